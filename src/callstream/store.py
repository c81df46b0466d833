"""SQLite store: one writer task commits calls, final segments and DTMF in batched transactions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from callstream.events import CallEnded, CallStarted, Dtmf, Event, SegmentFinal

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    duration_s REAL,
    end_reason TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    seq INTEGER NOT NULL,
    leg TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    text TEXT NOT NULL,
    language TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_by_call ON segments(call_id, start_s);
CREATE TABLE IF NOT EXISTS dtmf (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    seq INTEGER NOT NULL,
    leg TEXT NOT NULL,
    digit TEXT NOT NULL,
    at_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls(started_at DESC);
"""

WRITE_BATCH = 256


class Store:
    def __init__(self, path: Path, max_pending: int = 10_000) -> None:
        self._path = path
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(max_pending)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self._path)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute("PRAGMA synchronous=NORMAL")
        await self._writer.executescript(SCHEMA)
        interrupted = await self._writer.execute(
            "UPDATE calls SET end_reason = 'interrupted', ended_at = ? WHERE ended_at IS NULL", (time.time(),)
        )
        if interrupted.rowcount:
            log.warning("calls_interrupted_by_restart", count=interrupted.rowcount)
        await self._writer.commit()
        self._reader = await aiosqlite.connect(self._path)
        self._reader.row_factory = aiosqlite.Row
        self._task = asyncio.create_task(self._write_loop(), name="store-writer")

    def put(self, event: Event) -> None:
        """Queue a record for the writer; never waits. A full queue means the disk stalled: count and log."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("store_queue_full", call_id=event.call_id, type=type(event).__name__)

    async def close(self) -> None:
        """Write everything queued, then close."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()

    async def _write_loop(self) -> None:
        assert self._writer is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            records = [e for e in batch if e is not None]
            try:
                for event in records:
                    await self._write(event)
                await self._writer.commit()
            except Exception:
                log.exception("store_write_failed", records=len(records))
                await self._writer.rollback()
            if stop:
                return

    async def _write(self, event: Event) -> None:
        assert self._writer is not None
        if isinstance(event, CallStarted):
            await self._writer.execute(
                "INSERT OR IGNORE INTO calls (call_id, started_at) VALUES (?, ?)", (event.call_id, event.started_at)
            )
        elif isinstance(event, SegmentFinal):
            await self._writer.execute(
                "INSERT INTO segments (call_id, seq, leg, start_s, end_s, text, language) VALUES (?,?,?,?,?,?,?)",
                (event.call_id, event.seq, event.leg, event.start, event.end, event.text, event.language),
            )
        elif isinstance(event, Dtmf):
            await self._writer.execute(
                "INSERT INTO dtmf (call_id, seq, leg, digit, at_s) VALUES (?,?,?,?,?)",
                (event.call_id, event.seq, event.leg, event.digit, event.at),
            )
        elif isinstance(event, CallEnded):
            await self._writer.execute(
                "UPDATE calls SET ended_at = ?, duration_s = ?, end_reason = ?, error = ? WHERE call_id = ?",
                (time.time(), event.duration, event.reason, event.error, event.call_id),
            )

    async def recent_calls(self, limit: int) -> list[dict[str, Any]]:
        assert self._reader is not None
        async with self._reader.execute(
            "SELECT call_id, started_at, ended_at, duration_s, end_reason, error,"
            " (SELECT count(*) FROM segments s WHERE s.call_id = c.call_id) AS segments"
            " FROM calls c ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def call(self, call_id: str) -> dict[str, Any] | None:
        assert self._reader is not None
        async with self._reader.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        result = dict(row)
        async with self._reader.execute(
            "SELECT seq, leg, start_s AS start, end_s AS end, text, language FROM segments"
            " WHERE call_id = ? ORDER BY start_s, seq",
            (call_id,),
        ) as cursor:
            result["segments"] = [dict(r) for r in await cursor.fetchall()]
        async with self._reader.execute(
            "SELECT seq, leg, digit, at_s AS at FROM dtmf WHERE call_id = ? ORDER BY seq", (call_id,)
        ) as cursor:
            result["dtmf"] = [dict(r) for r in await cursor.fetchall()]
        return result
