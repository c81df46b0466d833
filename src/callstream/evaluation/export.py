"""Calls that agents reviewed, read from the store as labelled calls (docs/labelling.md), so that a
helpline can score the insights on its own calls and train on them.

An agent's feedback (`POST /v1/calls/{id}/feedback`) corrects some fields and leaves the rest; a
field it leaves is taken as the call's final insights had it, so what an agent did not correct counts
as confirmed. Several feedbacks on one call are applied in order, a later one winning field by field.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callstream.evaluation.insights import LabelledCall, LabelledEntity, Turn, check_call
from callstream.nlp.taxonomy import Taxonomy

CALLER_ROLE_UNKNOWN = "other"  # the store does not know who called
LABEL_FIELDS = ("category", "subcategory", "priority", "flags", "entities")


class ExportError(Exception):
    pass


@dataclass
class Export:
    calls: list[LabelledCall] = field(default_factory=list)
    flags_reviewed: int = 0  # exported calls whose feedback listed the risk flags itself
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (call id, why)


def export_reviewed_calls(db_path: Path, taxonomy: Taxonomy, *, flags_reviewed_only: bool = False) -> Export:
    """Every ended call with feedback, as a labelled call that passes `check_call`. With
    `flags_reviewed_only`, only calls whose feedback names their risk flags (an empty list included),
    which is what a fair flag precision needs: elsewhere unreviewed flags would count as right."""
    result = Export()
    with closing(_open_read_only(db_path)) as db:
        for call_id, rows in _reviewed_calls(db):
            feedback = _merged_feedback(rows)
            if flags_reviewed_only and "flags" not in feedback:
                result.skipped.append((call_id, "feedback does not list the risk flags"))
                continue
            call, why = _labelled_call(db, call_id, feedback)
            if call is None:
                result.skipped.append((call_id, why))
                continue
            problems = check_call(call, taxonomy)
            if problems:
                result.skipped.append((call_id, "; ".join(problems)))
                continue
            result.calls.append(call)
            result.flags_reviewed += "flags" in feedback
    return result


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Read only, so that exporting beside a running server can never change what it stores."""
    if not path.is_file():
        raise ExportError(f"no call store at {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM feedback LIMIT 1")
    except sqlite3.Error as exc:
        raise ExportError(f"{path} is not a callstream store: {exc}") from None
    db.row_factory = sqlite3.Row
    return db


def _reviewed_calls(db: sqlite3.Connection) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rows = db.execute("SELECT call_id, body FROM feedback ORDER BY call_id, id").fetchall()
    by_call: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_call.setdefault(row["call_id"], []).append(json.loads(row["body"]))
    yield from by_call.items()


def _merged_feedback(rows: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for body in rows:
        merged.update({k: v for k, v in body.items() if k in LABEL_FIELDS and v is not None})
    return merged


def _labelled_call(db: sqlite3.Connection, call_id: str, feedback: dict[str, Any]) -> tuple[LabelledCall | None, str]:
    call = db.execute("SELECT ended_at FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if call is None or call["ended_at"] is None:
        return None, "the call has not ended"
    segments = db.execute(
        "SELECT leg, start_s, end_s, text, language FROM segments WHERE call_id = ? ORDER BY start_s, seq", (call_id,)
    ).fetchall()
    if not segments:
        return None, "no transcript"
    stored = db.execute("SELECT body FROM insights WHERE call_id = ?", (call_id,)).fetchone()
    insights = json.loads(stored["body"]) if stored is not None else {}
    labels = _labels(insights, feedback)
    missing = [name for name in ("category", "priority") if labels.get(name) is None]
    if missing:
        return None, f"no insights stored and the feedback gives no {' or '.join(missing)}"
    return (
        LabelledCall(
            id=call_id,
            caller_role=CALLER_ROLE_UNKNOWN,
            languages=_languages(segments),
            turns=_turns(segments),
            category=labels["category"],
            subcategory=labels["subcategory"],
            priority=labels["priority"],
            flags=labels["flags"],
            entities=[LabelledEntity(e["label"], e["text"]) for e in labels["entities"]],
        ),
        "",
    )


def _labels(insights: dict[str, Any], feedback: dict[str, Any]) -> dict[str, Any]:
    """The final insights' labels, with the agent's corrections over them."""
    categories = insights.get("categories") or []
    labels: dict[str, Any] = {
        "category": categories[0]["id"] if categories else None,
        "subcategory": insights.get("subcategory"),
        "priority": insights.get("priority"),
        "flags": [flag["id"] for flag in insights.get("risk_flags", [])],
        "entities": [{"label": e["label"], "text": e["text"]} for e in insights.get("entities", [])],
    }
    if "category" in feedback and feedback["category"] != labels["category"] and "subcategory" not in feedback:
        labels["subcategory"] = None  # the insights' sub-category belongs to the category the agent corrected
    labels.update(feedback)
    return labels


def _turns(segments: list[sqlite3.Row]) -> list[Turn]:
    """Final segments in call order, a leg's consecutive segments joined into one turn."""
    turns: list[Turn] = []
    for segment in segments:
        if turns and turns[-1].leg == segment["leg"]:
            turns[-1] = Turn(segment["leg"], f"{turns[-1].text} {segment['text']}")
        else:
            turns.append(Turn(segment["leg"], segment["text"]))
    return turns


def _languages(segments: list[sqlite3.Row]) -> list[str]:
    """The call's languages, the one with the most seconds of speech first."""
    seconds: dict[str, float] = {}
    for segment in segments:
        seconds[segment["language"]] = seconds.get(segment["language"], 0.0) + segment["end_s"] - segment["start_s"]
    return sorted(seconds, key=lambda language: -seconds[language])
