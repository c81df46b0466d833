"""Tier 4: the default multilingual base model end to end on a small fixed subset of real speech."""

import asyncio
import uuid

from callstream.app import start_server
from callstream.audiosocket.player import call_messages, play, read_wav_pcm
from callstream.evaluation.speech import load_manifest
from callstream.evaluation.wer import corpus_wer
from conftest import EventLog, capture_uuid, reference, replay, test_settings

# Fixed subset: the 16 kHz channel-driver capture (English) and two Swahili news clips at 8 kHz.
SWAHILI_CLIPS = 2
BASE_WER_BOUND_EN = 0.15


async def collect(http_port: int, log: EventLog, ready: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{http_port}/v1/events") as ws:
        ready.set()
        async for msg in ws:
            event = msg.json()
            log.events.append(event)
            if event["type"] == "call.ended":
                log.ended.setdefault(event["call_id"], asyncio.Event()).set()


async def test_base_model_transcribes_english_and_detects_swahili(tmp_path):
    server = await start_server(test_settings(tmp_path, model="base", CALLSTREAM_ASR_LANGUAGES='["en", "sw"]'))
    log, ready = EventLog(), asyncio.Event()
    reader = asyncio.create_task(collect(server.http_port, log, ready))
    try:
        await ready.wait()
        swahili = [c for c in load_manifest() if c.language == "sw"][:SWAHILI_CLIPS]
        sw_calls = {uuid.uuid4(): c for c in swahili}
        sw_plays = []
        for call_id, clip in sw_calls.items():
            pcm, rate = read_wav_pcm(clip.path_8k)
            sw_plays.append(
                play("127.0.0.1", server.audiosocket_ports[0], call_messages(call_id, pcm + bytes(8000), rate))
            )
        await asyncio.gather(replay(server, "direct16k"), *sw_plays)
        english_id = capture_uuid("direct16k")
        await log.wait_ended(english_id)
        assert corpus_wer([(reference("direct16k"), log.text(english_id))]) <= BASE_WER_BOUND_EN
        assert {e["language"] for e in log.of(english_id, "segment.final")} == {"en"}
        for call_id in sw_calls:
            await log.wait_ended(str(call_id))
            finals = log.of(str(call_id), "segment.final")
            assert finals and all(e["language"] == "sw" for e in finals), finals
            # Swahili finals are translated to English for the NLP, and the insights say the call's language.
            translated = log.of(str(call_id), "segment.translated")
            assert translated and all(t["language"] == "sw" and t["text"] for t in translated), translated
            insights = log.of(str(call_id), "insights")
            assert insights[-1]["final"] and insights[-1]["language"] == "sw"
            assert insights[-1]["translation"]
        assert not log.of(english_id, "segment.translated")
    finally:
        reader.cancel()
        await server.stop()
