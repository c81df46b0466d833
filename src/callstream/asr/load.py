"""How busy the ASR executor has been lately: the share of the last few seconds spent decoding finals."""

from __future__ import annotations

import collections


class LoadMeter:
    def __init__(self, window_s: float = 10.0) -> None:
        self._window_s = window_s
        self._spans: collections.deque[tuple[float, float]] = collections.deque()  # (start, end), oldest first

    def record(self, start_s: float, end_s: float) -> None:
        self._spans.append((start_s, end_s))

    def fraction(self, now_s: float) -> float:
        horizon = now_s - self._window_s
        while self._spans and self._spans[0][1] <= horizon:
            self._spans.popleft()
        busy = sum(end - max(start, horizon) for start, end in self._spans)
        return min(1.0, busy / self._window_s)
