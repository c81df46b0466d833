"""SQLite store: one writer task commits calls, segments, DTMF, insights and feedback in batched transactions."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from callstream import events
from callstream.events import Alert, CallEnded, CallStarted, Dtmf, Event, Insights, SegmentFinal, SegmentTranslated

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
CREATE TABLE IF NOT EXISTS insights (
    call_id TEXT PRIMARY KEY REFERENCES calls(call_id),
    updated_at REAL NOT NULL,
    final INTEGER NOT NULL,
    body TEXT NOT NULL  -- the latest insights event, JSON
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    seq INTEGER NOT NULL,
    flag TEXT NOT NULL,
    score REAL NOT NULL,
    evidence TEXT NOT NULL,
    at_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(call_id),
    created_at REAL NOT NULL,
    body TEXT NOT NULL  -- rating and corrections, JSON
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,  -- queued, running, done, failed
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    call_id TEXT,  -- the live call this recording is of, when known
    language TEXT,  -- a hint from the uploader
    channel_legs TEXT NOT NULL,  -- JSON: channel index -> leg
    source TEXT NOT NULL,  -- upload, webhook, spool
    filename TEXT,
    size_bytes INTEGER NOT NULL,
    audio_path TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    finished_at REAL,
    result TEXT  -- JSON, when done
);
CREATE INDEX IF NOT EXISTS recordings_by_status ON recordings(status, created_at);
CREATE INDEX IF NOT EXISTS recordings_by_call ON recordings(call_id, created_at);
"""
# Columns added after the first release; added to existing databases on open.
MIGRATIONS = [("segments", "translation", "TEXT")]

WRITE_BATCH = 256


@dataclass
class Statement:
    """A write whose caller waits for its commit (an accepted request must survive a crash):
    an SQL statement, or an event stored as `put` would store it."""

    sql: str = ""
    params: tuple[Any, ...] = ()
    event: Event | None = None
    done: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Store:
    def __init__(self, path: Path, max_pending: int = 10_000) -> None:
        self._path = path
        self._queue: asyncio.Queue[Event | Statement | None] = asyncio.Queue(max_pending)
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
        await self._migrate()
        interrupted = await self._writer.execute(
            "UPDATE calls SET end_reason = 'interrupted', ended_at = ? WHERE ended_at IS NULL", (time.time(),)
        )
        if interrupted.rowcount:
            log.warning("calls_interrupted_by_restart", count=interrupted.rowcount)
        await self._writer.commit()
        self._reader = await aiosqlite.connect(self._path)
        self._reader.row_factory = aiosqlite.Row
        self._task = asyncio.create_task(self._write_loop(), name="store-writer")

    async def _migrate(self) -> None:
        assert self._writer is not None
        for table, column, kind in MIGRATIONS:
            async with self._writer.execute(f"PRAGMA table_info({table})") as cursor:
                columns = {row[1] for row in await cursor.fetchall()}
            if column not in columns:
                await self._writer.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one write through the writer and wait until it is committed; returns the row id."""
        statement = Statement(sql, params)
        await self._queue.put(statement)
        return await statement.done

    async def put_committed(self, event: Event) -> None:
        """Store an event and wait for its commit (used before telling subscribers a call ended)."""
        statement = Statement(event=event)
        await self._queue.put(statement)
        await statement.done

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
            row_ids: list[tuple[Statement, int]] = []
            try:
                for record in records:
                    if isinstance(record, Statement) and record.event is not None:
                        await self._write(record.event)
                        row_ids.append((record, 0))
                    elif isinstance(record, Statement):
                        cursor = await self._writer.execute(record.sql, record.params)
                        row_ids.append((record, cursor.lastrowid or 0))
                    else:
                        await self._write(record)
                await self._writer.commit()
            except Exception as exc:
                log.exception("store_write_failed", records=len(records))
                await self._writer.rollback()
                for record in records:
                    if isinstance(record, Statement) and not record.done.done():
                        record.done.set_exception(exc)
            for statement, row_id in row_ids:
                if not statement.done.done():
                    statement.done.set_result(row_id)
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
        elif isinstance(event, SegmentTranslated):
            await self._writer.execute(
                "UPDATE segments SET translation = ? WHERE call_id = ? AND leg = ? AND start_s = ?",
                (event.text, event.call_id, event.leg, event.start),
            )
        elif isinstance(event, Insights):
            await self._writer.execute(
                "INSERT INTO insights (call_id, updated_at, final, body) VALUES (?,?,?,?) ON CONFLICT(call_id)"
                " DO UPDATE SET updated_at = excluded.updated_at, final = excluded.final, body = excluded.body",
                (event.call_id, time.time(), int(event.final), events.encode(event).decode()),
            )
        elif isinstance(event, Alert):
            flag = event.flag
            await self._writer.execute(
                "INSERT INTO alerts (call_id, seq, flag, score, evidence, at_s) VALUES (?,?,?,?,?,?)",
                (event.call_id, event.seq, flag.id, flag.score, flag.evidence, flag.at),
            )
        elif isinstance(event, CallEnded):
            await self._writer.execute(
                "UPDATE calls SET ended_at = ?, duration_s = ?, end_reason = ?, error = ? WHERE call_id = ?",
                (time.time(), event.duration, event.reason, event.error, event.call_id),
            )

    async def fetch_all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A read on the reader connection (WAL: never blocked by the writer)."""
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def recent_calls(self, limit: int) -> list[dict[str, Any]]:
        return await self.fetch_all(
            "SELECT call_id, started_at, ended_at, duration_s, end_reason, error,"
            " (SELECT count(*) FROM segments s WHERE s.call_id = c.call_id) AS segments"
            " FROM calls c ORDER BY started_at DESC LIMIT ?",
            (limit,),
        )

    async def has_call(self, call_id: str) -> bool:
        return await self.fetch_one("SELECT 1 FROM calls WHERE call_id = ?", (call_id,)) is not None

    async def call(self, call_id: str) -> dict[str, Any] | None:
        result = await self.fetch_one("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        if result is None:
            return None
        key = (call_id,)
        result["segments"] = await self.fetch_all(
            "SELECT seq, leg, start_s AS start, end_s AS end, text, language, translation FROM segments"
            " WHERE call_id = ? ORDER BY start_s, seq",
            key,
        )
        result["dtmf"] = await self.fetch_all(
            "SELECT seq, leg, digit, at_s AS at FROM dtmf WHERE call_id = ? ORDER BY seq", key
        )
        insights = await self.fetch_one("SELECT body FROM insights WHERE call_id = ?", key)
        result["insights"] = _insights_body(json.loads(insights["body"])) if insights is not None else None
        result["alerts"] = await self.fetch_all(
            "SELECT seq, flag, score, evidence, at_s AS at FROM alerts WHERE call_id = ? ORDER BY seq", key
        )
        feedback = await self.fetch_all("SELECT id, created_at, body FROM feedback WHERE call_id = ? ORDER BY id", key)
        result["feedback"] = [{"id": r["id"], "created_at": r["created_at"], **json.loads(r["body"])} for r in feedback]
        result["post_call"] = await self._post_call(call_id)
        return result

    async def _post_call(self, call_id: str) -> dict[str, Any] | None:
        """The latest recording uploaded for this call, with its result once done."""
        row = await self.fetch_one(
            "SELECT id, status, progress, error, result FROM recordings WHERE call_id = ?"
            " ORDER BY created_at DESC LIMIT 1",
            (call_id,),
        )
        if row is None:
            return None
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    async def add_feedback(self, call_id: str, body: dict[str, Any]) -> int:
        return await self.execute(
            "INSERT INTO feedback (call_id, created_at, body) VALUES (?,?,?)", (call_id, time.time(), json.dumps(body))
        )


def _insights_body(event: dict[str, Any]) -> dict[str, Any]:
    """The stored event without its envelope (type, call_id, seq)."""
    return {k: v for k, v in event.items() if k not in ("type", "call_id", "seq")}
