"""Tier 3: real speech through the live path (socket, VAD, Whisper) into the NLP thread and out as
`alert` and `insights` events; stored insights and agent feedback over HTTP, exported as a
labelled call.

No recording of a real helpline call is available, so the speech is a real read sentence ("The
child almost hurt the small dog.") and the taxonomy is the shipped one plus one user-added pattern
that makes "hurt" physical abuse: this checks the wiring and the editable taxonomy end to end;
flag and category quality are measured on the labelled transcripts (tests/test_insights_eval.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from callstream.app import RunningServer, start_server
from callstream.audiosocket.player import call_messages, play, read_wav_pcm
from callstream.evaluation.export import export_reviewed_calls
from callstream.evaluation.insights import check_call
from callstream.evaluation.speech import load_manifest
from callstream.nlp import taxonomy
from callstream.nlp.taxonomy import DEFAULT_PATH
from conftest import REPO, EventLog, test_settings

SPEECH = REPO.parent / "shared" / "data" / "speech"
pytestmark = pytest.mark.slow


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    taxonomy_path = tmp_path / "taxonomy.toml"
    text = DEFAULT_PATH.read_text()
    at = text.index("patterns = [", text.index('id = "physical_abuse"')) + len("patterns = [")
    taxonomy_path.write_text(text[:at] + '\n    "\\\\bhurt\\\\b",' + text[at:])  # a user-added pattern
    running = await start_server(
        test_settings(tmp_path, CALLSTREAM_NLP_TAXONOMY=str(taxonomy_path), CALLSTREAM_NLP_UPDATE_INTERVAL_S="0.5")
    )
    yield running
    await running.stop()


async def _play_clip(server: RunningServer, clip_id: str) -> str:
    clip = next(c for c in load_manifest(SPEECH) if c.id == clip_id)
    pcm, rate = read_wav_pcm(clip.path_8k)
    call_id = uuid.uuid4()
    await play("127.0.0.1", server.audiosocket_ports[0], call_messages(call_id, pcm, rate))
    return str(call_id)


async def test_real_speech_raises_alert_and_insights(
    server: RunningServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    log = EventLog()
    async with http.ws_connect("/v1/events") as ws:
        call_id = await _play_clip(server, "en_sb_spk1_snt1")
        async for msg in ws:
            event = msg.json()
            log.events.append(event)
            if event["type"] == "call.ended" and event["call_id"] == call_id:
                break

    events = log.of(call_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "hurt" in log.text(call_id).lower()
    alerts = log.of(call_id, "alert")
    assert [a["flag"]["id"] for a in alerts] == ["physical_abuse"]
    assert "hurt" in alerts[0]["flag"]["evidence"].lower()
    final_segment_seq = log.of(call_id, "segment.final")[0]["seq"]
    assert alerts[0]["seq"] > final_segment_seq
    insights = log.of(call_id, "insights")
    assert insights and insights[-1]["final"]
    last = insights[-1]
    # One read sentence about a dog says little about the case category; its quality is measured on
    # the labelled calls. Here: a full ranking, best first, and the same one stored.
    scores = [c["score"] for c in last["categories"]]
    assert len(scores) == 7 and scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 0.01
    assert [f["id"] for f in last["risk_flags"]] == ["physical_abuse"]
    assert last["priority"] <= 2
    assert last["language"] == "en"
    assert events[-1]["type"] == "call.ended"  # final insights come before the end of the call

    stored = await (await http.get(f"/v1/calls/{call_id}")).json()
    assert stored["insights"]["final"] is True
    assert stored["insights"]["categories"] == last["categories"]
    assert [a["flag"] for a in stored["alerts"]] == ["physical_abuse"]

    feedback = {"rating": 4, "category": "vane", "flags": ["physical_abuse"], "comment": "dog, not child"}
    response = await http.post(f"/v1/calls/{call_id}/feedback", json=feedback)
    assert response.status == 201
    stored = await (await http.get(f"/v1/calls/{call_id}")).json()
    assert stored["feedback"][0]["rating"] == 4 and stored["feedback"][0]["flags"] == ["physical_abuse"]

    # The reviewed call leaves the running server's store as a labelled call to score and train on.
    tax = taxonomy.load(tmp_path / "taxonomy.toml")
    export = export_reviewed_calls(tmp_path / "callstream.db", tax, flags_reviewed_only=True)
    [labelled] = export.calls
    assert (labelled.id, labelled.category, labelled.flags) == (call_id, "vane", ["physical_abuse"])
    assert "hurt" in " ".join(t.text for t in labelled.turns).lower()
    assert check_call(labelled, tax) == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"rating": 9}', 400, "rating must be 1 to 5"),
        (b'{"flags": ["danger"]}', 400, "unknown risk flag 'danger'"),
        (b'{"category": "weather"}', 400, "unknown category 'weather'"),
        (b'{"entities": [{"label": "SHOE", "text": "x"}]}', 400, "unknown entity label"),
        (b'{"mood": "good"}', 400, "mood"),
        (b"not json", 400, "invalid feedback"),
    ],
)
async def test_bad_feedback_is_refused_with_a_reason(
    http: aiohttp.ClientSession, body: bytes, status: int, message: str
) -> None:
    response = await http.post(f"/v1/calls/{uuid.uuid4()}/feedback", data=body)
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_feedback_for_unknown_call_is_404(http: aiohttp.ClientSession) -> None:
    response = await http.post(f"/v1/calls/{uuid.uuid4()}/feedback", json={"rating": 3})
    assert response.status == 404
