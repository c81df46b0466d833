"""The persisted queue of recordings to analyse, and the runner that works through it.

A job is a row in SQLite, written (and committed) before the upload is answered, with its
audio already on disk. A job that was running when the server died is queued again on the
next start; its result is written in the same transaction that marks it done, so every
accepted recording ends up done (or failed, with a reason) exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from callstream.nlp.engine import TranscriptSegment
from callstream.nlp.service import InsightsService, snapshot_dict
from callstream.recordings.worker_process import WorkerDied, WorkerError, WorkerProcess
from callstream.store import Store

log = structlog.get_logger(__name__)

PROGRESS_WRITE_EVERY_S = 2.0
IDLE_POLL_S = 5.0
YIELD_POLL_S = 0.05  # how often the live executor is checked; a live final waits at most this for the cores
RESUME_AFTER_IDLE_S = 0.3  # the live executor must be idle this long before post-call work resumes
LIST_COLUMNS = "id, created_at, status, progress, error, call_id, language, source, filename, size_bytes"


@dataclass(frozen=True)
class NewRecording:
    audio_path: Path  # already in the recordings directory, complete
    size_bytes: int
    source: str  # upload, webhook, spool
    filename: str | None
    call_id: str | None
    language: str | None
    channel_legs: dict[int, str]


def new_id() -> str:
    return uuid.uuid4().hex


class RecordingJobs:
    """The recordings table: every write is committed before it returns."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, job_id: str, recording: NewRecording) -> None:
        await self._store.execute(
            "INSERT INTO recordings (id, created_at, status, call_id, language, channel_legs, source, filename,"
            " size_bytes, audio_path) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                time.time(),
                "queued",
                recording.call_id,
                recording.language,
                json.dumps(recording.channel_legs),
                recording.source,
                recording.filename,
                recording.size_bytes,
                str(recording.audio_path),
            ),
        )

    async def requeue_interrupted(self) -> int:
        rows = await self._store.fetch_all("SELECT id FROM recordings WHERE status = 'running'")
        if rows:
            await self._store.execute("UPDATE recordings SET status = 'queued', progress = 0 WHERE status = 'running'")
            log.warning("recordings_requeued_after_restart", count=len(rows), ids=[r["id"] for r in rows])
        return len(rows)

    async def next_queued(self, exclude: set[str]) -> dict[str, Any] | None:
        rows = await self._store.fetch_all(
            "SELECT * FROM recordings WHERE status = 'queued' ORDER BY created_at LIMIT ?", (len(exclude) + 1,)
        )
        return next((r for r in rows if r["id"] not in exclude), None)

    async def mark_running(self, job_id: str) -> None:
        await self._store.execute(
            "UPDATE recordings SET status = 'running', started_at = ?, attempts = attempts + 1, error = NULL"
            " WHERE id = ?",
            (time.time(), job_id),
        )

    async def set_progress(self, job_id: str, progress: float) -> None:
        await self._store.execute(
            "UPDATE recordings SET progress = ? WHERE id = ? AND status = 'running'", (progress, job_id)
        )

    async def finish(self, job_id: str, result: dict[str, Any]) -> None:
        """Result and status in one transaction: a job is either done with its result or not done."""
        await self._store.execute(
            "UPDATE recordings SET status = 'done', progress = 1, result = ?, finished_at = ?"
            " WHERE id = ? AND status = 'running'",
            (json.dumps(result, ensure_ascii=False), time.time(), job_id),
        )

    async def fail(self, job_id: str, error: str) -> None:
        await self._store.execute(
            "UPDATE recordings SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
            (error, time.time(), job_id),
        )

    async def requeue(self, job_id: str, error: str) -> None:
        await self._store.execute(
            "UPDATE recordings SET status = 'queued', progress = 0, error = ? WHERE id = ?", (error, job_id)
        )

    async def get(self, job_id: str) -> dict[str, Any] | None:
        row = await self._store.fetch_one("SELECT * FROM recordings WHERE id = ?", (job_id,))
        return public_view(row) if row is not None else None

    async def list(self, limit: int, status: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = await self._store.fetch_all(
            f"SELECT {LIST_COLUMNS} FROM recordings {where} ORDER BY created_at DESC LIMIT ?", (*params, limit)
        )
        return rows

    async def delete(self, job_id: str) -> dict[str, Any] | None:
        row = await self._store.fetch_one("SELECT audio_path FROM recordings WHERE id = ?", (job_id,))
        if row is None:
            return None
        await self._store.execute("DELETE FROM recordings WHERE id = ?", (job_id,))
        return row


def public_view(row: dict[str, Any]) -> dict[str, Any]:
    """What GET /v1/recordings/{id} shows: no server paths, JSON columns decoded."""
    view = {k: v for k, v in row.items() if k not in ("audio_path", "result", "channel_legs")}
    view["channel_legs"] = {int(k): v for k, v in json.loads(row["channel_legs"]).items()}
    view["result"] = json.loads(row["result"]) if row.get("result") else None
    return view


class RecordingRunner:
    """Takes queued jobs one at a time per worker process, lowest priority on the machine."""

    def __init__(
        self,
        jobs: RecordingJobs,
        make_worker: Callable[[str], WorkerProcess],
        insights: InsightsService | None,
        *,
        workers: int,
        translate: bool,
        max_attempts: int,
        live_busy: Callable[[], bool] | None = None,
    ) -> None:
        self._jobs = jobs
        self._insights = insights
        self._translate = translate
        self._max_attempts = max_attempts
        self._workers = [make_worker(f"recording-{i}") for i in range(workers)]
        self._wake = asyncio.Event()
        self._claimed: dict[str, WorkerProcess] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._live_busy = live_busy
        self._paused_since: float | None = None
        self.paused_s = 0.0
        self.completed = 0
        self.failed = 0

    @property
    def running_jobs(self) -> int:
        return len(self._claimed)

    async def start(self) -> None:
        await self._jobs.requeue_interrupted()
        self._tasks = [asyncio.create_task(self._loop(w), name=w.name) for w in self._workers]
        if self._live_busy is not None:
            self._tasks.append(asyncio.create_task(self._yield_to_live(self._live_busy), name="recordings-yield"))

    def wake(self) -> None:
        """A job was queued."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """The recording was deleted while running: stop its worker (a new one starts for the next job)."""
        worker = self._claimed.get(job_id)
        if worker is not None:
            log.info("recording_cancelled", recording_id=job_id, worker=worker.name)
            worker.kill()

    async def stop(self, timeout_s: float) -> None:
        """A running job is left 'running' in the store: the next start queues it again."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.stop(timeout_s) for w in self._workers), return_exceptions=True)

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    async def _yield_to_live(self, live_busy: Callable[[], bool]) -> None:
        """Uploads always yield to live calls: while the live executor has work, the workers are
        stopped (SIGSTOP) and they resume once it has been idle for a moment. Sharing the cores
        slowed live decoding by a third (docs/benchmarks.md); nice alone cannot prevent that."""
        idle_since: float | None = None
        while True:
            await asyncio.sleep(YIELD_POLL_S)
            now = time.monotonic()
            if live_busy():
                idle_since = None
                if self._claimed:
                    if self._paused_since is None:
                        self._paused_since = now
                    for worker in self._workers:
                        worker.pause()  # also one started since the last pause
            elif self._paused_since is not None:
                idle_since = idle_since or now
                if now - idle_since >= RESUME_AFTER_IDLE_S:
                    self.paused_s += now - self._paused_since
                    self._paused_since = None
                    for worker in self._workers:
                        worker.resume()

    async def _loop(self, worker: WorkerProcess) -> None:
        while not self._stopping:
            job = await self._jobs.next_queued(set(self._claimed))
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # poll now and then too: jobs queued by a restart
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
                continue
            if job["id"] in self._claimed:
                continue  # another worker's loop took it while this one was reading
            self._claimed[job["id"]] = worker
            try:
                await self._run(worker, job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording_runner_failed", recording_id=job["id"])
                await self._jobs.fail(job["id"], "internal error; see the server log")
            finally:
                self._claimed.pop(job["id"], None)

    async def _run(self, worker: WorkerProcess, job: dict[str, Any]) -> None:
        job_id = job["id"]
        bound = log.bind(recording_id=job_id, call_id=job["call_id"], worker=worker.name)
        await self._jobs.mark_running(job_id)
        bound.info("recording_started", attempt=job["attempts"] + 1, size_bytes=job["size_bytes"])
        started = time.monotonic()
        request = {
            "job": job_id,
            "path": job["audio_path"],
            "language": job["language"],
            "channel_legs": json.loads(job["channel_legs"]),
            "translate": self._translate,
        }
        try:
            transcript = await worker.run(request, self._progress_writer(job_id))
        except WorkerError as exc:
            self.failed += 1
            bound.warning("recording_failed", error=str(exc), kind=exc.kind)
            await self._jobs.fail(job_id, str(exc))
            return
        except WorkerDied as exc:
            await self._after_worker_death(job, str(exc))
            return
        transcript["insights"] = await self._analyse(transcript)
        transcript["processing_s"] = round(time.monotonic() - started, 3)
        if await self._jobs.get(job_id) is None:
            bound.info("recording_deleted_while_running")
            return
        await self._jobs.finish(job_id, transcript)
        self.completed += 1
        bound.info(
            "recording_done",
            duration_s=transcript["duration_s"],
            processing_s=transcript["processing_s"],
            segments=len(transcript["segments"]),
        )

    async def _after_worker_death(self, job: dict[str, Any], reason: str) -> None:
        if await self._jobs.get(job["id"]) is None:
            return  # deleted: its worker was killed on purpose
        attempts = job["attempts"] + 1
        if attempts >= self._max_attempts:
            self.failed += 1
            log.error("recording_failed_worker_died", recording_id=job["id"], attempts=attempts, reason=reason)
            await self._jobs.fail(job["id"], f"{reason}; gave up after {attempts} attempts")
        else:
            log.warning("recording_retry_worker_died", recording_id=job["id"], attempts=attempts, reason=reason)
            await self._jobs.requeue(job["id"], reason)

    def _progress_writer(self, job_id: str) -> Callable[[float], None]:
        last_write = [0.0]
        pending: set[asyncio.Task[None]] = set()

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last_write[0] < PROGRESS_WRITE_EVERY_S or pending:
                return
            last_write[0] = now
            task = asyncio.create_task(self._jobs.set_progress(job_id, min(fraction, 0.99)))
            pending.add(task)
            task.add_done_callback(pending.discard)

        return report

    async def _analyse(self, transcript: dict[str, Any]) -> dict[str, Any] | None:
        if self._insights is None:
            return None
        segments = [
            TranscriptSegment(
                s["start"],
                s["end"],
                s["leg"],
                s["text"],
                s.get("language", transcript["language"]),
                s.get("translation"),
            )
            for s in transcript["segments"]
        ]
        snapshot = await self._insights.analyse(segments)
        return snapshot_dict(snapshot)
