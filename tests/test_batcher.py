"""Tier 1: the ASR executor with a fake transcriber behind our own interface."""

import asyncio
import threading

import numpy as np
import pytest

from callstream.asr.batcher import AsrBatcher, AsrJob, QueueFull
from callstream.asr.transcriber import AsrRequest, AsrResult


class GatedTranscriber:
    """Records each batch; blocks until the test opens the gate, so queue order can be observed."""

    sample_rate_hz = 16_000

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[list[float]] = []
        self.qualities: list[set[str]] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def transcribe(self, requests):
        self.gate.wait(5)
        marks = [float(r.audio[0]) for r in requests]
        self.batches.append(marks)
        self.qualities.append({r.quality for r in requests})
        if self.fail_on in marks:
            raise ValueError("bad audio")
        return [AsrResult(text=f"t{m:g}", language="en") for m in marks]


def job(call_id: str, kind: str, mark: float, leg: str = "caller") -> AsrJob:
    future = asyncio.get_running_loop().create_future()
    request = AsrRequest(np.full(10, mark, dtype=np.float32), "en")
    return AsrJob(call_id, f"{call_id}/{leg}", kind, request, future)


async def test_finals_before_partials_lone_finals_accurate_queued_finals_fast():
    fake = GatedTranscriber()
    batcher = AsrBatcher(fake, max_batch=2, max_partial_batch=2, max_pending_finals=10)
    batcher.start()
    first = job("a", "final", 0)
    batcher.submit(first)
    await asyncio.sleep(0.05)  # the worker takes it and waits at the gate
    old_partial, new_partial = job("a", "partial", 1), job("a", "partial", 2)
    batcher.submit(old_partial)
    batcher.submit(new_partial)
    finals = [job("b", "final", 3), job("c", "final", 4), job("d", "final", 5)]
    for j in finals:
        batcher.submit(j)
    fake.gate.set()
    results = await asyncio.gather(*(j.future for j in [first, *finals, new_partial]))
    assert [r.text for r in results] == ["t0", "t3", "t4", "t5", "t2"]
    assert fake.batches == [[0], [3, 4], [5], [2]]
    # Alone in the queue a final is decoded accurately; when finals queue up, fast and together.
    assert fake.qualities == [{"accurate"}, {"fast"}, {"accurate"}, {"fast"}]
    assert old_partial.future.cancelled()
    batcher.stop(1)


async def test_work_of_an_ended_call_is_dropped():
    fake = GatedTranscriber()
    batcher = AsrBatcher(fake, max_batch=1, max_partial_batch=1, max_pending_finals=10)
    batcher.start()
    running, queued, other = job("x", "final", 0), job("gone", "final", 1), job("y", "final", 2)
    for j in (running, queued, other):
        batcher.submit(j)
    await asyncio.sleep(0.05)
    batcher.cancel_call("gone")
    fake.gate.set()
    await asyncio.gather(running.future, other.future)
    assert queued.future.cancelled()
    assert [1.0] not in fake.batches
    batcher.stop(1)


async def test_finals_queue_is_bounded():
    batcher = AsrBatcher(GatedTranscriber(), max_batch=1, max_partial_batch=1, max_pending_finals=2)
    batcher.submit(job("a", "final", 0))
    batcher.submit(job("a", "final", 1))
    with pytest.raises(QueueFull):
        batcher.submit(job("a", "final", 2))


async def test_one_failing_item_does_not_fail_its_batch():
    fake = GatedTranscriber(fail_on=1)
    fake.gate.set()
    batcher = AsrBatcher(fake, max_batch=4, max_partial_batch=1, max_pending_finals=10)
    jobs = [job("a", "final", 0), job("b", "final", 1), job("c", "final", 2)]
    for j in jobs:
        batcher.submit(j)
    batcher.start()
    results = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
    assert results[0].text == "t0" and results[2].text == "t2"
    assert isinstance(results[1], RuntimeError)
    assert batcher.stats.failed == 1
    batcher.stop(1)


def test_load_meter_counts_only_the_recent_window():
    from callstream.asr.load import LoadMeter

    meter = LoadMeter(window_s=10)
    meter.record(0, 4)
    meter.record(6, 8)
    assert meter.fraction(10) == 0.6
    assert meter.fraction(12) == 0.4  # the first span is half out of the window
    assert meter.fraction(30) == 0.0
