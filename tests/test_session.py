"""Tier 2: a call session fed decoded AudioSocket messages, real Silero VAD, a fake transcriber."""

import asyncio

from callstream.app import session_config
from callstream.asr.batcher import AsrBatcher
from callstream.asr.transcriber import AsrResult
from callstream.audiosocket.protocol import Audio, CallId, Decoder, Dtmf
from callstream.calls.registry import CallRegistry
from callstream.models import silero_vad_path
from callstream.settings import Settings
from callstream.vad.model import SileroVad
from callstream.vad.runner import VadRunner
from conftest import ASTERISK


class LengthTranscriber:
    sample_rate_hz = 16_000

    def transcribe(self, requests):
        return [AsrResult(text=f"{len(r.audio) / 16000:.1f} seconds", language="en") for r in requests]


async def test_capture_becomes_ordered_events():
    published, persisted = [], []
    batcher = AsrBatcher(LengthTranscriber(), max_batch=4, max_partial_batch=1, max_pending_finals=8)
    batcher.start()
    registry = CallRegistry(
        session_config(Settings()), batcher, published.append, persisted.append, max_calls=4, drain_timeout_s=5
    )
    vad = VadRunner(SileroVad(silero_vad_path()), registry.vad_targets, tick_s=0.03)
    session = None
    for message in Decoder().feed((ASTERISK / "app8k_dtmf.bin").read_bytes()):
        if isinstance(message, CallId):
            session, _ = registry.open_leg(str(message.value), "caller", lambda: None)
        elif isinstance(message, Audio):
            session.feed_audio("caller", message.pcm, message.sample_rate_hz)
            await vad.tick()
        elif isinstance(message, Dtmf):
            session.feed_dtmf("caller", message.digit)
    closing = asyncio.create_task(registry.close_leg(session, "caller", "hangup", None))
    while not closing.done():
        await vad.tick()
        await asyncio.sleep(0.01)
    batcher.stop(1)

    types = [type(e).__name__ for e in published]
    assert types[0] == "CallStarted" and types[-1] == "CallEnded"
    assert [e.seq for e in published] == list(range(1, len(published) + 1))
    finals = [e for e in published if type(e).__name__ == "SegmentFinal"]
    # Three clips of 4.2, 4.2 and 3.9 s, each found as one utterance within 0.5 s of its length.
    assert [round(e.end - e.start) for e in finals] == [4, 4, 4]
    assert all(float(e.text.split()[0]) > 3.5 for e in finals)
    assert [e.digit for e in published if type(e).__name__ == "Dtmf"] == ["1", "2", "#"]
    assert registry.sessions == {}
    assert {type(e).__name__ for e in persisted} == {"CallStarted", "SegmentFinal", "Dtmf", "CallEnded"}


async def test_call_ended_is_published_only_once_committed():
    published: list = []
    seen_at_commit: list[bool] = []

    async def commit(event) -> None:
        await asyncio.sleep(0.05)  # a slow disk
        seen_at_commit.append(any(type(e).__name__ == "CallEnded" for e in published))

    batcher = AsrBatcher(LengthTranscriber(), max_batch=1, max_partial_batch=1, max_pending_finals=1)
    registry = CallRegistry(
        session_config(Settings()),
        batcher,
        published.append,
        lambda _: None,
        max_calls=1,
        drain_timeout_s=1,
        commit=commit,
    )
    session, _ = registry.open_leg("call-1", "caller", lambda: None)
    session.close_leg("caller", "hangup")
    await session.finish(drain_timeout_s=1)
    assert seen_at_commit == [False]  # the commit finished before anyone was told
    assert type(published[-1]).__name__ == "CallEnded"
