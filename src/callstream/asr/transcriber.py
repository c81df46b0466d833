"""The narrow synchronous interface between the batcher thread and any speech recogniser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class AsrRequest:
    audio: np.ndarray  # 16 kHz mono float32
    language: str | None  # None: detect from this audio
    beam_size: int = 1


@dataclass(frozen=True, slots=True)
class AsrResult:
    text: str
    language: str
    no_speech_prob: float = 0.0


class Transcriber(Protocol):
    sample_rate_hz: int

    def transcribe(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        """One result per request, in order. Called from a single worker thread only."""
        ...
