"""Reviewed calls leave the store as labelled calls: a real SQLite store written by the server's own
writer, read back by `callstream export-labels`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from callstream.cli import main
from callstream.evaluation.export import ExportError, export_reviewed_calls
from callstream.evaluation.insights import check_call, load_calls
from callstream.events import (
    CallEnded,
    CallStarted,
    CategoryScore,
    EntityMention,
    Insights,
    RiskFlag,
    SegmentFinal,
)
from callstream.nlp import taxonomy
from callstream.store import Store

TURNS = [
    ("agent", "Child helpline, how can I help?"),
    ("caller", "My uncle beats me with a stick."),
    ("caller", "I am twelve and we live in Kibera."),
    ("agent", "Are you safe right now?"),
    ("caller", "Yes, he is at work."),
]


def _insights(call_id: str) -> Insights:
    return Insights(
        call_id=call_id,
        at=30.0,
        language="en",
        categories=[
            CategoryScore(id="vane", label="VANE", score=0.7),
            CategoryScore(id="gbv", label="GBV", score=0.3),
        ],
        subcategory="vane.physical_abuse",
        priority=2,
        risk_flags=[
            RiskFlag(id="physical_abuse", score=0.9, evidence="My uncle beats me with a stick.", at=5.0),
            RiskFlag(id="neglect", score=0.6, evidence="Yes, he is at work.", at=20.0),
        ],
        entities=[
            EntityMention(label="AGE", text="twelve", start=10, end=14),
            EntityMention(label="PLACE", text="Kibera", start=10, end=14),
        ],
        summary="My uncle beats me with a stick.",
        final=True,
        segments=len(TURNS),
    )


async def _call(store: Store, call_id: str, *, ended: bool = True, feedback: list[dict] = ()) -> None:
    store.put(CallStarted(call_id=call_id, started_at=1_700_000_000.0, leg="caller"))
    for k, (leg, text) in enumerate(TURNS):
        store.put(
            SegmentFinal(call_id=call_id, seq=k + 1, start=5.0 * k, end=5.0 * k + 4, text=text, language="en", leg=leg)
        )
    store.put(_insights(call_id))
    if ended:
        await store.put_committed(CallEnded(call_id=call_id, reason="hangup", duration=30.0))
    for body in feedback:
        await store.add_feedback(call_id, body)


@pytest.fixture
async def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "calls.db"
    store = Store(path)
    await store.open()
    await _call(store, "corrected", feedback=[{"rating": 2, "category": "gbv"}, {"flags": ["physical_abuse"]}])
    await _call(store, "confirmed", feedback=[{"rating": 5}])
    await _call(store, "unreviewed")
    await _call(store, "live", ended=False, feedback=[{"flags": []}])
    await store.close()
    return path


def test_reviewed_calls_become_labelled_calls(store_path: Path) -> None:
    tax = taxonomy.load()
    export = export_reviewed_calls(store_path, tax)
    by_id = {call.id: call for call in export.calls}
    assert set(by_id) == {"corrected", "confirmed"}
    assert export.skipped == [("live", "the call has not ended")]
    assert export.flags_reviewed == 1

    corrected = by_id["corrected"]
    # The agent's corrections win, field by field, the later feedback over the earlier one...
    assert corrected.category == "gbv" and corrected.flags == ["physical_abuse"]
    # ...and what the agent left is the final insights': priority and entities.
    assert corrected.priority == 2
    assert [(e.label, e.text) for e in corrected.entities] == [("AGE", "twelve"), ("PLACE", "Kibera")]
    # A sub-category of the category the agent corrected away does not stay.
    assert corrected.subcategory is None
    # A leg's consecutive segments are one turn.
    assert [(t.leg, t.text) for t in corrected.turns] == [
        ("agent", "Child helpline, how can I help?"),
        ("caller", "My uncle beats me with a stick. I am twelve and we live in Kibera."),
        ("agent", "Are you safe right now?"),
        ("caller", "Yes, he is at work."),
    ]
    assert corrected.languages == ["en"] and corrected.caller_role == "other" and corrected.evidence == {}

    confirmed = by_id["confirmed"]
    assert (confirmed.category, confirmed.subcategory) == ("vane", "vane.physical_abuse")
    assert confirmed.flags == ["physical_abuse", "neglect"]
    assert all(check_call(call, tax) == [] for call in export.calls)

    reviewed = export_reviewed_calls(store_path, tax, flags_reviewed_only=True)
    assert [call.id for call in reviewed.calls] == ["corrected"]


def test_export_reads_without_writing_and_refuses_what_is_not_a_store(store_path: Path, tmp_path: Path) -> None:
    before = store_path.read_bytes()
    export_reviewed_calls(store_path, taxonomy.load())
    assert store_path.read_bytes() == before
    with pytest.raises(ExportError, match="no call store"):
        export_reviewed_calls(tmp_path / "missing.db", taxonomy.load())
    (tmp_path / "notes.txt").write_text("not a database")
    with pytest.raises(ExportError, match="not a callstream store"):
        export_reviewed_calls(tmp_path / "notes.txt", taxonomy.load())
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ExportError, match="not a callstream store"):
        export_reviewed_calls(empty, taxonomy.load())


def test_export_labels_command_writes_what_the_evaluation_reads(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reviewed.jsonl"
    assert main(["export-labels", "--db", str(store_path), "--out", str(out)]) == 0
    assert sorted(call.id for call in load_calls(out)) == ["confirmed", "corrected"]
    assert "2 reviewed calls exported (1 with the risk flags reviewed), 1 skipped" in capsys.readouterr().err
    assert main(["export-labels", "--db", str(tmp_path / "missing.db")]) == 2
