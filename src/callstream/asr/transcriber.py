"""The narrow synchronous interface between the batcher thread and any speech recogniser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class AsrRequest:
    audio: np.ndarray  # 16 kHz mono float32
    language: str | None  # None: detect from this audio, helped by language_prior
    beam_size: int = 1
    # Evidence from the leg's earlier utterances (language -> weight in seconds of speech), so
    # one short, ambiguous utterance does not flip the language of a call.
    language_prior: dict[str, float] = field(default_factory=dict)
    # "accurate" when the executor has time for it, "fast" under load and for partials;
    # the recogniser decides what each means (for Whisper: the encoder window).
    quality: Literal["accurate", "fast"] = "accurate"
    # "translate": Whisper's own speech-to-English translation (the only offline translator here).
    task: Literal["transcribe", "translate"] = "transcribe"


@dataclass(frozen=True, slots=True)
class AsrResult:
    text: str
    language: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0  # mean log-probability per token: how sure the decoder was
    language_probs: dict[str, float] = field(default_factory=dict)  # when detection ran: the top candidates


class Transcriber(Protocol):
    sample_rate_hz: int

    def transcribe(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        """One result per request, in order. Called from a single worker thread only."""
        ...


def add_language_evidence(evidence: dict[str, float], probs: dict[str, float], audio_s: float) -> dict[str, float]:
    """Detection probabilities weighted by seconds of speech, added to earlier evidence (a new dict)."""
    total = dict(evidence)
    for language, prob in probs.items():
        total[language] = total.get(language, 0.0) + prob * audio_s
    return total
