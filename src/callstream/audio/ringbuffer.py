"""Per-leg ring buffer of 16 kHz float32 samples addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Keeps the newest `capacity_samples`; older audio is overwritten.

    Samples are addressed by their absolute index since the leg started, so VAD and
    ASR can refer to an utterance as [start, end) without copying audio around.
    """

    def __init__(self, capacity_samples: int) -> None:
        self._data = np.zeros(capacity_samples, dtype=np.float32)
        self._capacity = capacity_samples
        self._end = 0  # absolute index one past the newest sample

    @property
    def end_sample(self) -> int:
        return self._end

    @property
    def start_sample(self) -> int:
        return max(0, self._end - self._capacity)

    def write(self, samples: np.ndarray) -> None:
        n = len(samples)
        if n >= self._capacity:
            samples = samples[-self._capacity :]
            self._end += n - self._capacity
            n = self._capacity
        pos = self._end % self._capacity
        first = min(n, self._capacity - pos)
        self._data[pos : pos + first] = samples[:first]
        self._data[: n - first] = samples[first:]
        self._end += n

    def read(self, start_sample: int, end_sample: int) -> np.ndarray:
        """A copy of [start, end), clipped to what is still held."""
        start = max(start_sample, self.start_sample)
        end = min(end_sample, self._end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        pos = start % self._capacity
        n = end - start
        first = min(n, self._capacity - pos)
        out = np.empty(n, dtype=np.float32)
        out[:first] = self._data[pos : pos + first]
        out[first:] = self._data[: n - first]
        return out
