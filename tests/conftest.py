"""Shared fixtures: paths to ../shared data, a running server on port 0, AudioSocket replay and WebSocket capture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from callstream import settings
from callstream.app import RunningServer, start_server
from callstream.audiosocket.player import capture_messages, play

REPO = Path(__file__).resolve().parents[1]
ASTERISK = REPO.parent / "shared" / "data" / "asterisk"


def capture(name: str):
    return capture_messages(ASTERISK / f"{name}.bin", ASTERISK / f"{name}.tsv")


def reference(name: str) -> str:
    return " ".join((ASTERISK / f"{name}.txt").read_text().split("\n"))


def capture_uuid(name: str) -> str:
    return json.loads((ASTERISK / f"{name}.json").read_text())["uuid"]


def test_settings(tmp_path: Path, model: str = "tiny.en", **env: str) -> settings.Settings:
    base = {
        "CALLSTREAM_ASR_MODEL": model,
        "CALLSTREAM_HTTP_PORT": "0",
        "CALLSTREAM_AUDIOSOCKET_PORT": "0",
        "CALLSTREAM_STORE_PATH": str(tmp_path / "callstream.db"),
        "CALLSTREAM_LOG_LEVEL": "warning",
    }
    return settings.load(None, environ=base | env)


test_settings.__test__ = False  # a helper, not a test


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(test_settings(tmp_path))
    yield running
    await running.stop()


class EventLog:
    """Every event a WebSocket subscriber received, in order."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.ended: dict[str, asyncio.Event] = {}

    def of(self, call_id: str, type_: str | None = None) -> list[dict]:
        return [e for e in self.events if e["call_id"] == call_id and (type_ is None or e["type"] == type_)]

    def text(self, call_id: str) -> str:
        return " ".join(e["text"] for e in self.of(call_id, "segment.final"))

    async def wait_ended(self, call_id: str, timeout_s: float = 30) -> dict:
        event = self.ended.setdefault(call_id, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout_s)
        return self.of(call_id, "call.ended")[-1]


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.http_port}") as session:
        yield session


@pytest.fixture
async def events(http: aiohttp.ClientSession) -> AsyncIterator[EventLog]:
    log = EventLog()
    ws = await http.ws_connect("/v1/events")

    async def read() -> None:
        async for msg in ws:
            event = json.loads(msg.data)
            log.events.append(event)
            if event["type"] == "call.ended":
                log.ended.setdefault(event["call_id"], asyncio.Event()).set()

    reader = asyncio.create_task(read())
    yield log
    await ws.close()
    await asyncio.gather(reader, return_exceptions=True)


async def replay(server: RunningServer, name: str, port_index: int = 0) -> None:
    await play("127.0.0.1", server.audiosocket_ports[port_index], capture(name))
