"""Tier 1: post-call workers are stopped while the live executor has work, and resumed after it idles."""

from __future__ import annotations

import asyncio

from callstream.recordings.jobs import RecordingRunner


class FakeWorker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.paused = False
        self.signals: list[str] = []

    def pause(self) -> None:
        if not self.paused:
            self.signals.append("STOP")
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.signals.append("CONT")
        self.paused = False


async def _until(condition, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_workers_yield_to_live_work() -> None:
    busy = False
    workers: list[FakeWorker] = []

    def make(name: str) -> FakeWorker:
        workers.append(FakeWorker(name))
        return workers[-1]

    runner = RecordingRunner(None, make, None, workers=2, translate=False, max_attempts=2)  # type: ignore[arg-type]
    task = asyncio.create_task(runner._yield_to_live(lambda: busy))
    try:
        busy = True
        await asyncio.sleep(0.2)
        assert not any(w.paused for w in workers)  # nothing running: nothing to stop

        runner._claimed["job"] = workers[0]  # type: ignore[assignment]
        await _until(lambda: all(w.paused for w in workers))
        assert runner.paused
        busy = False
        await _until(lambda: not any(w.paused for w in workers))
        assert not runner.paused and runner.paused_s > 0
        assert workers[0].signals == ["STOP", "CONT"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
