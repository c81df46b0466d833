"""Tier 3: shutdown in the middle of a call keeps its transcript; a new process serves it from the store."""

import asyncio

import aiohttp

from callstream.app import start_server
from callstream.audiosocket.player import send_paced
from conftest import capture, capture_uuid, test_settings


async def test_shutdown_mid_call_keeps_finished_segments(tmp_path):
    config = test_settings(tmp_path)
    first = await start_server(config)
    call_id = capture_uuid("app8k_dtmf")
    # Play the first two clips (~10 s of the capture), then keep the socket open as a live call would.
    messages = [m for m in capture("app8k_dtmf") if m.at_s < 10.2]
    reader, writer = await asyncio.open_connection("127.0.0.1", first.audiosocket_ports[0])
    await send_paced(writer, messages)
    await asyncio.sleep(1.0)
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{first.http_port}/v1/calls/{call_id}") as r:
        live = await r.json()
    assert live["active"] is True
    await first.stop()
    assert await reader.read() == b""  # the server closed the call socket on shutdown
    writer.close()

    second = await start_server(config)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{second.http_port}/v1/calls/{call_id}") as r:
                stored = await r.json()
            async with http.get(f"http://127.0.0.1:{second.http_port}/readyz") as r:
                assert r.status == 200
    finally:
        await second.stop()
    assert stored["end_reason"] == "shutdown" and stored["active"] is False
    assert len(stored["segments"]) == 2
    assert stored["segments"][0]["text"].lower().startswith("since then")
    assert [d["digit"] for d in stored["dtmf"]] == ["1"]
