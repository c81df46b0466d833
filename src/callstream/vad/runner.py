"""The VAD tick: every active leg's new audio goes through Silero in one batched run per step, off the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable

import numpy as np
import structlog

from callstream.calls.leg import LegAudio
from callstream.vad.model import CHUNK_SAMPLES, SileroVad, VadState
from callstream.vad.tracker import TrackerEvent

log = structlog.get_logger(__name__)

# (leg audio, callback taking its tracker events)
Target = tuple[LegAudio, Callable[[list[TrackerEvent]], None]]
# Silero's recurrent state, carried from one speaker through a long pause, can make it deaf to the
# next, different voice (docs/benchmarks.md). After this much silence a leg starts afresh.
RESET_AFTER_SILENT_CHUNKS = 31  # ~1 s


def run_steps(model: SileroVad, pending: list[np.ndarray], states: list[VadState]) -> list[np.ndarray]:
    """Run chunk k of every leg that has one as batch k (one run per rate); legs keep their own state."""
    probabilities = [np.zeros(len(chunks), dtype=np.float32) for chunks in pending]
    steps = max((len(chunks) for chunks in pending), default=0)
    for k in range(steps):
        for rate_hz in {state.rate_hz for state in states}:
            members = [i for i, chunks in enumerate(pending) if len(chunks) > k and states[i].rate_hz == rate_hz]
            if not members:
                continue
            batch = np.stack([pending[i][k] for i in members])
            out = model.run(batch, [states[i] for i in members], rate_hz)
            for j, i in enumerate(members):
                probabilities[i][k] = out[j]
    return probabilities


class VadRunner:
    def __init__(self, model: SileroVad, targets: Callable[[], Iterable[Target]], tick_s: float) -> None:
        self._model = model
        self._targets = targets
        self._tick_s = tick_s
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.busy_s = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="vad-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.tick()
            except Exception:
                log.exception("vad_tick_failed")
            await asyncio.sleep(max(0.0, self._tick_s - (loop.time() - started)))

    async def tick(self) -> None:
        targets = [(leg, callback) for leg, callback in self._targets()]
        pending = [leg.pending_vad_chunks() for leg, _ in targets]
        active = [i for i, chunks in enumerate(pending) if len(chunks)]
        if not active:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        probabilities = await loop.run_in_executor(
            self._executor,
            run_steps,
            self._model,
            [pending[i] for i in active],
            [targets[i][0].vad_state for i in active],
        )
        self.busy_s += loop.time() - started
        self.ticks += 1
        for i, leg_probabilities in zip(active, probabilities, strict=True):
            leg, callback = targets[i]
            events: list[TrackerEvent] = []
            for p in leg_probabilities:
                events += leg.tracker.feed(float(p))
                leg.silent_chunks = 0 if leg.tracker.in_speech else leg.silent_chunks + 1
            if leg.silent_chunks >= RESET_AFTER_SILENT_CHUNKS:
                leg.vad_state = VadState(leg.vad_state.rate_hz)
                leg.silent_chunks = 0
            leg.vad_cursor_samples += len(leg_probabilities) * CHUNK_SAMPLES
            callback(events)
