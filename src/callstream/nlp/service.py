"""The NLP executor: one thread owns the models; calls send it final segments and get insights back.

Each final segment is analysed once, in order, on the NLP thread. A risk flag raised for the
first time is pushed at once as an `alert`. The `insights` update is debounced per call: the
first final after a quiet spell is answered at once, later ones at most every `update_interval_s`.
An update is a sub-millisecond sum of what is cached, so it does not queue behind other calls'
segments: it goes straight to the NLP thread and waits at most for the analysis running there.
Nothing here blocks the event loop, and the ASR thread never waits for it; the other way round,
segment analysis waits briefly (`max_defer_s`) while the ASR executor decodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec
import structlog

from callstream.events import Alert, Event, Insights
from callstream.nlp.engine import CallText, InsightsEngine, Snapshot, TranscriptSegment
from callstream.nlp.taxonomy import Taxonomy

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
Emit = Callable[[Event, bool], None]  # (event, persist): the call's own sequenced publish


@dataclass
class _Call:
    emit: Emit
    elapsed_s: Callable[[], float]
    text: CallText = field(default_factory=CallText)
    analysed: int = 0  # segments and late translations analysed (counted on the loop; text.revision: the thread's)
    published: int = 0  # the text.revision of the latest update
    last_update: float = float("-inf")  # monotonic
    update_due: asyncio.TimerHandle | None = None
    update_running: asyncio.Task[None] | None = None
    finished: bool = False


@dataclass(frozen=True)
class _Work:
    kind: str  # "segment", "translation" (of a segment already analysed), "finish"
    call_id: str
    segment: TranscriptSegment | None = None
    translation: str | None = None
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
        log.info(
            "nlp_models_loaded", load_s=round(time.monotonic() - started, 2), flag_threshold=self._engine.flag_threshold
        )
        self._worker = asyncio.create_task(self._run(), name="nlp-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            await self._queue.put(None)
            await self._worker
        for call in list(self._calls.values()):
            self._cancel_update(call)
        self._thread.shutdown(wait=True)

    # --- the live path -------------------------------------------------------------------

    def open_call(self, call_id: str, emit: Emit, elapsed_s: Callable[[], float]) -> None:
        self._calls[call_id] = _Call(emit, elapsed_s)

    def add_segment(self, call_id: str, segment: TranscriptSegment) -> None:
        if call_id in self._calls:
            self._submit(_Work("segment", call_id, segment))

    def add_translation(self, call_id: str, segment: TranscriptSegment, translation: str) -> None:
        """The English of a segment given to `add_segment` without it: analysed after that segment."""
        if call_id in self._calls:
            self._submit(_Work("translation", call_id, segment, translation))

    async def finish_call(self, call_id: str, timeout_s: float) -> None:
        """Analyse what is still queued for the call, push its final insights, forget it."""
        call = self._calls.get(call_id)
        if call is None:
            return
        call.finished = True
        self._cancel_update(call)
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
        return await self._on_thread(self._engine.mask, text)

    # --- uploads -------------------------------------------------------------------------

    async def analyse(self, segments: list[TranscriptSegment]) -> Snapshot:
        """Insights for a whole transcript (post-call) on the same thread as live calls, one segment
        per hop, so live calls' work interleaves with it instead of waiting for a whole recording."""
        assert self._engine is not None
        text = CallText()
        for segment in segments:
            await self._on_thread(self._engine.add_segment, text, segment)
        return await self._on_thread(self._engine.snapshot, text)

    # --- the worker ----------------------------------------------------------------------

    def _submit(self, work: _Work) -> None:
        try:
            self._queue.put_nowait(work)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("nlp_queue_full", call_id=work.call_id, kind=work.kind)

    async def _run(self) -> None:
        while (work := await self._queue.get()) is not None:
            await self._defer_while_live_busy(work)
            call = self._calls.get(work.call_id)
            try:
                if call is not None:
                    await self._do(work, call)
            except Exception:
                log.exception("nlp_failed", call_id=work.call_id, kind=work.kind)
            finally:
                if work.done is not None and not work.done.done():
                    work.done.set_result(None)

    async def _defer_while_live_busy(self, work: _Work) -> None:
        """Only analysis (spaCy and MiniLM, ~16 ms) waits; the final insights are a sub-millisecond sum."""
        if self._live_busy is None or work.kind == "finish":
            return
        deadline = work.queued_at + self._max_defer_s
        while self._live_busy() and time.monotonic() < deadline:
            await asyncio.sleep(DEFER_POLL_S)

    async def _do(self, work: _Work, call: _Call) -> None:
        assert self._engine is not None
        if work.kind in ("segment", "translation"):
            assert work.segment is not None
            try:
                if work.kind == "segment":
                    new_flags = await self._on_thread(self._engine.add_segment, call.text, work.segment)
                else:
                    analyse = self._engine.add_translation
                    new_flags = await self._on_thread(analyse, call.text, work.segment, work.translation)
            finally:
                call.analysed += 1
            self.stats.segments += work.kind == "segment"
            for flag in new_flags:
                self.stats.alerts += 1
                call.emit(Alert(call_id=work.call_id, flag=flag), True)
                log.warning("risk_alert", call_id=work.call_id, flag=flag.id, score=flag.score, at=flag.at)
            self._schedule_update(work.call_id, call)
        elif work.kind == "finish" and call.analysed:
            await self._publish(work.call_id, call, final=True)

    async def _on_thread(self, work: Callable[..., _T], *args: object) -> _T:
        """Run on the NLP thread, counting the time it works (not the time it waits) as busy."""

        def timed() -> _T:
            started = time.perf_counter()
            try:
                return work(*args)
            finally:
                self.stats.busy_s += time.perf_counter() - started  # written only on the NLP thread

        return await asyncio.get_running_loop().run_in_executor(self._thread, timed)

    # --- updates: debounced per call, beside the worker ----------------------------------

    def _schedule_update(self, call_id: str, call: _Call) -> None:
        if call.finished or call.update_due is not None or call.update_running is not None:
            return  # an update is coming; one still running re-checks for newer segments when it ends
        if call.analysed == call.published:
            return
        delay = max(0.0, call.last_update + self._interval_s - time.monotonic())
        if delay == 0.0:
            self._start_update(call_id, call)
            return

        def due() -> None:
            call.update_due = None
            self._start_update(call_id, call)

        call.update_due = asyncio.get_running_loop().call_later(delay, due)

    def _start_update(self, call_id: str, call: _Call) -> None:
        if not call.finished:
            call.update_running = asyncio.create_task(self._update(call_id, call), name=f"nlp-update-{call_id}")

    async def _update(self, call_id: str, call: _Call) -> None:
        try:
            await self._publish(call_id, call, final=False)
        except Exception:
            log.exception("nlp_failed", call_id=call_id, kind="update")
            return  # the next analysed segment tries again; no retry loop on a snapshot that fails
        finally:
            call.update_running = None
        self._schedule_update(call_id, call)  # segments analysed while the snapshot was being taken

    def _cancel_update(self, call: _Call) -> None:
        """At call end: the final insights follow, so a pending live update is dropped."""
        if call.update_due is not None:
            call.update_due.cancel()
            call.update_due = None
        if call.update_running is not None:
            call.update_running.cancel()
            call.update_running = None

    async def _publish(self, call_id: str, call: _Call, final: bool) -> None:
        assert self._engine is not None
        call.last_update = time.monotonic()
        snapshot = await self._on_thread(self._engine.snapshot, call.text)
        if call.finished and not final:
            return  # the call ended while this snapshot was taken: only the final insights go out now
        self.stats.updates += 1
        call.published = snapshot.revision
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
