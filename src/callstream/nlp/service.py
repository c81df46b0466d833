"""The NLP executor: one thread owns the models; calls send it final segments and get insights back.

Each final segment is analysed once, in order, on the NLP thread. A risk flag raised for the
first time is pushed at once as an `alert`. The `insights` update is debounced per call: the
first final after a quiet spell is answered at once, later ones at most every `update_interval_s`.
Nothing here blocks the event loop, and the ASR thread never waits for it; the other way round,
segment analysis waits briefly (`max_defer_s`) while the ASR executor decodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec
import structlog

from callstream.events import Alert, Event, Insights
from callstream.nlp.engine import CallText, InsightsEngine, Snapshot, TranscriptSegment
from callstream.nlp.taxonomy import Taxonomy

log = structlog.get_logger(__name__)

Emit = Callable[[Event, bool], None]  # (event, persist): the call's own sequenced publish


@dataclass
class _Call:
    emit: Emit
    elapsed_s: Callable[[], float]
    text: CallText = field(default_factory=CallText)
    last_update: float = float("-inf")  # monotonic
    update_due: asyncio.TimerHandle | None = None
    update_queued: bool = False
    dirty: bool = False
    finished: bool = False


@dataclass(frozen=True)
class _Work:
    kind: str  # "segment", "update", "finish"
    call_id: str
    segment: TranscriptSegment | None = None
    done: asyncio.Future[None] | None = None
    queued_at: float = field(default_factory=time.monotonic)


DEFER_POLL_S = 0.01


@dataclass
class InsightsStats:
    segments: int = 0
    updates: int = 0
    alerts: int = 0
    dropped: int = 0
    busy_s: float = 0.0


class InsightsService:
    def __init__(
        self,
        load_engine: Callable[[], InsightsEngine],
        *,
        update_interval_s: float,
        max_pending: int,
        live_busy: Callable[[], bool] | None = None,
        max_defer_s: float = 0.0,
    ) -> None:
        self._load_engine = load_engine
        self._interval_s = update_interval_s
        # NLP work waits (up to max_defer_s after it was queued) while the ASR executor decodes: on a
        # small CPU the two compete for the same cores, and a final's latency matters more.
        self._live_busy = live_busy
        self._max_defer_s = max_defer_s
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlp")
        self._queue: asyncio.Queue[_Work | None] = asyncio.Queue(max_pending)
        self._calls: dict[str, _Call] = {}
        self._engine: InsightsEngine | None = None
        self._worker: asyncio.Task[None] | None = None
        self.stats = InsightsStats()

    @property
    def taxonomy(self) -> Taxonomy | None:
        return self._engine.taxonomy if self._engine is not None else None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        started = time.monotonic()
        self._engine = await asyncio.get_running_loop().run_in_executor(self._thread, self._load_engine)
        log.info("nlp_models_loaded", load_s=round(time.monotonic() - started, 2))
        self._worker = asyncio.create_task(self._run(), name="nlp-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            await self._queue.put(None)
            await self._worker
        self._thread.shutdown(wait=True)

    # --- the live path -------------------------------------------------------------------

    def open_call(self, call_id: str, emit: Emit, elapsed_s: Callable[[], float]) -> None:
        self._calls[call_id] = _Call(emit, elapsed_s)

    def add_segment(self, call_id: str, segment: TranscriptSegment) -> None:
        if call_id in self._calls:
            self._submit(_Work("segment", call_id, segment))

    async def finish_call(self, call_id: str, timeout_s: float) -> None:
        """Analyse what is still queued for the call, push its final insights, forget it."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.finished = True
        if call.update_due is not None:
            call.update_due.cancel()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._queue.put(_Work("finish", call_id, done=done)), timeout_s)
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            log.error("final_insights_timeout", call_id=call_id, waited_s=timeout_s)
        finally:
            self._calls.pop(call_id, None)

    @property
    def masking(self) -> bool:
        return self._engine is not None and self._engine.masking

    async def mask(self, text: str) -> str:
        """The text with configured PII replaced; on the NLP thread, because it runs the NER."""
        if not self.masking:
            return text
        assert self._engine is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._engine.mask, text)

    # --- uploads -------------------------------------------------------------------------

    async def analyse(self, segments: list[TranscriptSegment]) -> Snapshot:
        """Insights for a whole transcript (post-call) on the same thread as live calls, one segment
        per hop, so live calls' work interleaves with it instead of waiting for a whole recording."""
        assert self._engine is not None
        loop = asyncio.get_running_loop()
        text = CallText()
        for segment in segments:
            await loop.run_in_executor(self._thread, self._engine.add_segment, text, segment)
        return await loop.run_in_executor(self._thread, self._engine.snapshot, text)

    # --- the worker ----------------------------------------------------------------------

    def _submit(self, work: _Work) -> None:
        try:
            self._queue.put_nowait(work)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("nlp_queue_full", call_id=work.call_id, kind=work.kind)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (work := await self._queue.get()) is not None:
            await self._defer_while_live_busy(work)
            call = self._calls.get(work.call_id)
            try:
                if call is not None:
                    await self._do(loop, work, call)
            except Exception:
                log.exception("nlp_failed", call_id=work.call_id, kind=work.kind)
            finally:
                if work.done is not None and not work.done.done():
                    work.done.set_result(None)

    async def _defer_while_live_busy(self, work: _Work) -> None:
        """Only segment analysis (spaCy and MiniLM, ~16 ms) waits; an update is a sub-millisecond sum."""
        if self._live_busy is None or work.kind != "segment":
            return
        deadline = work.queued_at + self._max_defer_s
        while self._live_busy() and time.monotonic() < deadline:
            await asyncio.sleep(DEFER_POLL_S)

    async def _do(self, loop: asyncio.AbstractEventLoop, work: _Work, call: _Call) -> None:
        assert self._engine is not None
        engine = self._engine
        started = time.monotonic()
        if work.kind == "segment":
            assert work.segment is not None
            new_flags = await loop.run_in_executor(self._thread, engine.add_segment, call.text, work.segment)
            self.stats.segments += 1
            for flag in new_flags:
                self.stats.alerts += 1
                call.emit(Alert(call_id=work.call_id, flag=flag), True)
                log.warning("risk_alert", call_id=work.call_id, flag=flag.id, score=flag.score, at=flag.at)
            call.dirty = True
            if not call.finished:
                self._schedule_update(work.call_id, call)
        elif work.kind == "update":
            call.update_queued = False
            if call.dirty and not call.finished:
                await self._publish(loop, work.call_id, call, final=False)
        elif work.kind == "finish" and call.text.segments:
            await self._publish(loop, work.call_id, call, final=True)
        self.stats.busy_s += time.monotonic() - started

    def _schedule_update(self, call_id: str, call: _Call) -> None:
        if call.update_due is not None or call.update_queued:
            return  # an update is already coming and will include this segment
        delay = max(0.0, call.last_update + self._interval_s - time.monotonic())
        if delay == 0.0:
            call.update_queued = True
            self._submit(_Work("update", call_id))
            return

        def due() -> None:
            call.update_due = None
            if not call.finished:
                call.update_queued = True
                self._submit(_Work("update", call_id))

        call.update_due = asyncio.get_running_loop().call_later(delay, due)

    async def _publish(self, loop: asyncio.AbstractEventLoop, call_id: str, call: _Call, final: bool) -> None:
        assert self._engine is not None
        call.dirty = False
        call.last_update = time.monotonic()
        snapshot = await loop.run_in_executor(self._thread, self._engine.snapshot, call.text)
        self.stats.updates += 1
        call.emit(insights_event(call_id, snapshot, round(call.elapsed_s(), 3), final), True)


def insights_event(call_id: str, snapshot: Snapshot, at_s: float, final: bool) -> Insights:
    return Insights(
        call_id=call_id,
        at=at_s,
        language=snapshot.language,
        categories=snapshot.categories,
        subcategory=snapshot.subcategory,
        priority=snapshot.priority,
        risk_flags=snapshot.risk_flags,
        entities=snapshot.entities,
        summary=snapshot.summary,
        translation=snapshot.translation,
        final=final,
        segments=snapshot.segments,
    )


def snapshot_dict(snapshot: Snapshot) -> dict[str, object]:
    """The insights fields as plain JSON values (post-call results use the live event's shape)."""
    event = insights_event("", snapshot, 0.0, final=True)
    body = msgspec.to_builtins(event)
    return {k: v for k, v in body.items() if k not in ("type", "call_id", "seq", "at")}
