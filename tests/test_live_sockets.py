"""Tier 3: real sockets on port 0, real Asterisk captures replayed byte-exact at their real pace, tiny.en."""

import asyncio
import socket
import uuid

import aiohttp

from callstream.app import start_server
from callstream.audiosocket.player import TimedMessage, call_messages, play
from callstream.audiosocket.protocol import Kind, encode, encode_uuid
from callstream.evaluation.wer import corpus_wer
from conftest import capture, capture_uuid, reference, replay, test_settings

# tiny.en on telephone-band audio; measured WER on these captures is recorded in docs/benchmarks.md.
TINY_WER_BOUND = 0.25


async def test_real_captures_stream_words_dtmf_and_end(server, http, events):
    await asyncio.gather(replay(server, "app8k_dtmf"), replay(server, "direct16k"))
    for name in ("app8k_dtmf", "direct16k"):
        call_id = capture_uuid(name)
        ended = await events.wait_ended(call_id)
        assert ended["reason"] == "hangup" and ended["error"] is None
        assert corpus_wer([(reference(name), events.text(call_id))]) <= TINY_WER_BOUND
        call_events = events.of(call_id)
        assert [e["seq"] for e in call_events] == list(range(1, len(call_events) + 1))
        assert call_events[0]["type"] == "call.started" and call_events[-1]["type"] == "call.ended"
        assert events.of(call_id, "segment.partial"), "speech longer than a second gets partials"
        for final in events.of(call_id, "segment.final"):
            assert final["language"] == "en" and final["leg"] == "caller" and 0 <= final["start"] < final["end"]
    assert [e["digit"] for e in events.of(capture_uuid("app8k_dtmf"), "dtmf")] == ["1", "2", "#"]
    # Transcripts of ended calls come from the store.
    async with http.get(f"/v1/calls/{capture_uuid('app8k_dtmf')}") as r:
        stored = await r.json()
    assert stored["end_reason"] == "hangup" and not stored["active"]
    assert [s["text"] for s in stored["segments"]] == [e["text"] for e in events.of(stored["call_id"], "segment.final")]
    assert [d["digit"] for d in stored["dtmf"]] == ["1", "2", "#"]


async def test_three_concurrent_calls_do_not_mix(server, events):
    names = [f"concurrent8k_x3_{i}" for i in (1, 2, 3)]
    await asyncio.gather(*(replay(server, n) for n in names))
    texts = {}
    for name in names:
        await events.wait_ended(capture_uuid(name))
        texts[name] = events.text(capture_uuid(name))
        assert corpus_wer([(reference(name), texts[name])]) <= TINY_WER_BOUND, texts[name]
    for name in names:
        for other in names:
            if other != name:  # another call's transcript would score near 100% against this reference
                assert corpus_wer([(reference(name), texts[other])]) > 0.6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_connections(call_ids: dict[str, uuid.UUID]) -> dict[str, list[TimedMessage]]:
    frame = encode(Kind.AUDIO_8K, b"\x00\x01" * 160)

    def start(name: str) -> list[TimedMessage]:
        return [TimedMessage(0, encode_uuid(call_ids[name])), *(TimedMessage(0.5 + i * 0.02, frame) for i in range(50))]

    return {
        "unknown_kind": [*start("unknown_kind"), TimedMessage(1.6, b"\x42\x00\x02ab")],
        "oversized": [*start("oversized"), TimedMessage(1.6, b"\x10\xff\xf0")],
        "truncated": [*start("truncated"), TimedMessage(1.6, frame[:100])],
        "audio_before_uuid": [TimedMessage(0, frame), TimedMessage(0.02, encode_uuid(call_ids["audio_before_uuid"]))],
    }


async def test_malformed_streams_end_only_their_own_call(server, http, events):
    call_ids = {name: uuid.uuid4() for name in ("unknown_kind", "oversized", "truncated", "audio_before_uuid")}
    port = server.audiosocket_ports[0]
    healthy = asyncio.create_task(replay(server, "concurrent8k_x3_2"))
    await asyncio.sleep(1.0)
    await asyncio.gather(*(play("127.0.0.1", port, msgs) for msgs in bad_connections(call_ids).values()))
    for name in ("unknown_kind", "oversized", "truncated"):
        ended = await events.wait_ended(str(call_ids[name]), timeout_s=10)
        assert ended["reason"] == "error" and ended["error"], name
    # Audio before the UUID names no call: the connection is closed and logged, nothing is published.
    assert events.of(str(call_ids["audio_before_uuid"])) == []
    await healthy
    healthy_id = capture_uuid("concurrent8k_x3_2")
    ended = await events.wait_ended(healthy_id)
    assert ended["reason"] == "hangup"
    assert corpus_wer([(reference("concurrent8k_x3_2"), events.text(healthy_id))]) <= TINY_WER_BOUND
    async with http.get("/v1/calls") as r:
        listed = await r.json()
    assert {c["call_id"]: c["end_reason"] for c in listed["recent"]}[str(call_ids["oversized"])] == "error"


async def test_server_hangup_sends_the_hangup_frame(server, http, events):
    call_id = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.audiosocket_ports[0])
    writer.write(encode_uuid(call_id) + encode(Kind.AUDIO_8K, bytes(320)))
    await writer.drain()
    for _ in range(50):
        async with http.post(f"/v1/calls/{call_id}/hangup") as r:
            if r.status == 202:
                break
        await asyncio.sleep(0.02)
    assert await asyncio.wait_for(reader.readexactly(3), 5) == b"\x00\x00\x00"
    writer.close()  # as Asterisk does after a hangup frame
    assert (await events.wait_ended(str(call_id)))["reason"] == "server"
    async with http.post(f"/v1/calls/{uuid.uuid4()}/hangup") as r:
        assert r.status == 404


async def test_calls_over_the_limit_are_refused_without_harm(tmp_path):
    running = await start_server(test_settings(tmp_path, CALLSTREAM_AUDIOSOCKET_MAX_CALLS="1"))
    try:
        port = running.audiosocket_ports[0]
        first = asyncio.create_task(play("127.0.0.1", port, call_messages(uuid.uuid4(), bytes(16000), 8000)))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode_uuid(uuid.uuid4()))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, no hangup frame
        writer.close()
        await first
    finally:
        await running.stop()


async def test_two_legs_join_one_call(tmp_path):
    agent_port = free_port()  # 0 means "no agent listener", so the test picks a free port itself
    running = await start_server(test_settings(tmp_path, CALLSTREAM_AUDIOSOCKET_AGENT_PORT=str(agent_port)))
    try:
        caller_port, agent = running.audiosocket_ports
        assert agent == agent_port
        call_id = uuid.UUID(capture_uuid("concurrent8k_x3_1"))
        agent_audio = [m for m in capture("concurrent8k_x3_3") if m.data[0] != Kind.UUID]
        agent_messages = [TimedMessage(0, encode_uuid(call_id)), *agent_audio]
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"http://127.0.0.1:{running.http_port}/v1/calls/{call_id}/events")
            await asyncio.gather(
                play("127.0.0.1", caller_port, capture("concurrent8k_x3_1")),
                play("127.0.0.1", agent_port, agent_messages),
            )
            received = []
            async for msg in ws:
                received.append(msg.json())
                if received[-1]["type"] == "call.ended":
                    break
        finals = [e for e in received if e["type"] == "segment.final"]
        by_leg = {leg: " ".join(e["text"] for e in finals if e["leg"] == leg) for leg in ("caller", "agent")}
        assert corpus_wer([(reference("concurrent8k_x3_1"), by_leg["caller"])]) <= TINY_WER_BOUND
        assert corpus_wer([(reference("concurrent8k_x3_3"), by_leg["agent"])]) <= TINY_WER_BOUND
        assert [e["type"] for e in received].count("call.started") == 1
        assert [e["type"] for e in received].count("call.ended") == 1
    finally:
        await running.stop()
