"""The one ASR executor: a thread that owns the model and serves every call's utterances.

Finals go before partials; a partial is replaced by a newer one for the same leg; work for a
hung-up call is dropped before it runs. Results come back to the event loop as futures.

The executor adapts to its own load. While finals take little of its time, a final gets the
accurate setting; when they take more, finals are batched with the fast setting. Partials are
decoded only while the executor as a whole is mostly idle, so a final rarely finds it busy.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import structlog

from callstream.asr.load import LoadMeter
from callstream.asr.transcriber import AsrRequest, AsrResult, Transcriber

log = structlog.get_logger(__name__)

JobKind = Literal["final", "partial"]
ACCURATE_BELOW_FINAL_LOAD = 0.4  # a final is decoded accurately only while finals take less than this
PARTIALS_BELOW_TOTAL_LOAD = 0.5  # partials are decoded only while all work takes less than this
SHED_RECHECK_S = 0.2


class QueueFull(Exception):
    """The final-utterance queue is at its bound; the caller decides what to drop."""


@dataclass(eq=False)
class AsrJob:
    call_id: str
    leg_key: str  # call_id/leg: partials are superseded per leg
    kind: JobKind
    request: AsrRequest
    future: asyncio.Future[AsrResult]
    submitted_at: float = field(default_factory=time.monotonic)
    cancelled: bool = False


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    busy_s: float = 0.0
    partials_superseded: int = 0
    cancelled: int = 0
    failed: int = 0
    fast_items: int = 0  # finals decoded with the fast setting because of load
    final_load: float = 0.0  # share of the last 10 s spent decoding finals
    total_load: float = 0.0  # share of the last 10 s spent decoding anything


class AsrBatcher:
    def __init__(
        self, transcriber: Transcriber, *, max_batch: int, max_partial_batch: int, max_pending_finals: int
    ) -> None:
        self._transcriber = transcriber
        self._max_batch = max_batch
        # A final that arrives while partials decode waits for them: keep partial batches small.
        self._max_partial_batch = max_partial_batch
        self._max_pending_finals = max_pending_finals
        self._finals: collections.deque[AsrJob] = collections.deque()
        self._partials: dict[str, AsrJob] = {}  # insertion order = age
        self._condition = threading.Condition()
        self._stopping = False
        self._decoding = False
        self._thread = threading.Thread(target=self._run, name="asr-batcher", daemon=True)
        self._final_load = LoadMeter()
        self._total_load = LoadMeter()
        self.stats = BatcherStats()

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> tuple[int, int]:
        return len(self._finals), len(self._partials)

    def submit(self, job: AsrJob) -> None:
        with self._condition:
            if self._stopping:
                raise QueueFull("ASR executor is shutting down")
            if job.kind == "final":
                if len(self._finals) >= self._max_pending_finals:
                    raise QueueFull(f"{len(self._finals)} final utterances are already waiting")
                self._finals.append(job)
            else:
                superseded = self._partials.pop(job.leg_key, None)
                if superseded is not None:
                    self._drop(superseded)
                    self.stats.partials_superseded += 1
                self._partials[job.leg_key] = job
            self._condition.notify()

    def cancel_call(self, call_id: str) -> None:
        """Drop queued work of a call that ended; a batch already running finishes and is discarded."""
        with self._condition:
            for job in [j for j in self._finals if j.call_id == call_id]:
                self._finals.remove(job)
                self._drop(job)
            for key in [k for k, j in self._partials.items() if j.call_id == call_id]:
                self._drop(self._partials.pop(key))

    def cancel_all(self) -> None:
        """Drop everything queued (shutdown past its deadline); a running batch finishes and is discarded."""
        with self._condition:
            for job in [*self._finals, *self._partials.values()]:
                self._drop(job)
            self._finals.clear()
            self._partials.clear()

    def cancel_job(self, job: AsrJob) -> None:
        with self._condition:
            if job in self._finals:
                self._finals.remove(job)
            elif self._partials.get(job.leg_key) is job:
                del self._partials[job.leg_key]
            self._drop(job)

    def cancel_call_partials(self, call_id: str) -> None:
        with self._condition:
            for key in [k for k, j in self._partials.items() if j.call_id == call_id]:
                self._drop(self._partials.pop(key))

    def cancel_leg_partials(self, leg_key: str) -> None:
        with self._condition:
            job = self._partials.pop(leg_key, None)
            if job is not None:
                self._drop(job)

    def stop(self, timeout_s: float) -> None:
        """Finish what is queued within the deadline, then drop the rest."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(timeout_s)
        self.cancel_all()

    def _drop(self, job: AsrJob) -> None:
        job.cancelled = True
        self.stats.cancelled += 1
        loop = job.future.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_cancel, job.future)

    def _take_batch(self) -> list[AsrJob] | None:
        with self._condition:
            while True:
                now = time.monotonic()
                final_load = self.stats.final_load = self._final_load.fraction(now)
                total_load = self.stats.total_load = self._total_load.fraction(now)
                if self._finals:
                    # A lone final on a quiet executor is decoded accurately; otherwise fast, and together.
                    lone_and_quiet = len(self._finals) == 1 and final_load < ACCURATE_BELOW_FINAL_LOAD
                    quality = "accurate" if lone_and_quiet else "fast"
                    count = min(len(self._finals), self._max_batch)
                    return [self._with_quality(self._finals.popleft(), quality) for _ in range(count)]
                if self._stopping:
                    return None
                if self._partials and total_load < PARTIALS_BELOW_TOTAL_LOAD:
                    count = min(len(self._partials), self._max_partial_batch)
                    return [
                        self._with_quality(self._partials.pop(next(iter(self._partials))), "fast") for _ in range(count)
                    ]
                # Nothing, or only partials the finals have no room for: wait for work or for the load to fall.
                self._condition.wait(SHED_RECHECK_S if self._partials else None)

    def _with_quality(self, job: AsrJob, quality: str) -> AsrJob:
        if job.request.quality != quality:
            job.request = dataclasses.replace(job.request, quality=quality)  # type: ignore[arg-type]
            self.stats.fast_items += job.kind == "final" and quality == "fast"
        return job

    @property
    def busy(self) -> bool:
        """Decoding or holding work: post-call jobs pause while this is true (read from the loop)."""
        return self._decoding or any(self.pending)

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            started = time.monotonic()
            self._decoding = True
            try:
                self._run_batch(batch)
            finally:
                self._decoding = False
            ended = time.monotonic()
            if batch[0].kind == "final":
                self._final_load.record(started, ended)
            self._total_load.record(started, ended)
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.busy_s += ended - started

    def _run_batch(self, batch: list[AsrJob]) -> None:
        try:
            results = self._transcriber.transcribe([job.request for job in batch])
        except Exception:
            if len(batch) == 1:
                self._fail(batch[0])
                return
            # One bad item must not take the others with it: run them one by one.
            for job in batch:
                self._run_batch([job])
            return
        for job, result in zip(batch, results, strict=True):
            self._deliver(job, result)

    def _deliver(self, job: AsrJob, result: AsrResult) -> None:
        loop = job.future.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_set_result, job.future, result)

    def _fail(self, job: AsrJob) -> None:
        self.stats.failed += 1
        log.exception("asr_failed", call_id=job.call_id, kind=job.kind)
        loop = job.future.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(_set_exception, job.future, RuntimeError("transcription failed"))


def _set_result(future: asyncio.Future[AsrResult], result: AsrResult) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[AsrResult], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


def _cancel(future: asyncio.Future[AsrResult]) -> None:
    future.cancel()
