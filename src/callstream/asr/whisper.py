"""Whisper through CTranslate2 with batches of shortened encoder windows (see docs/asr-options.md)."""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from callstream.asr.transcriber import AsrRequest, AsrResult, add_language_evidence

SAMPLE_RATE_HZ = 16_000
FRAMES_PER_SECOND = 100


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """How long an encoder window a piece of audio gets.

    Whisper was trained on 30 s windows; CTranslate2 accepts shorter ones, which are far
    cheaper on a CPU but cost accuracy (docs/asr-options.md). Below ~10 s the decoder
    starts to loop, so that is the floor.
    """

    accurate_s: float = 20.0
    fast_s: float = 10.0
    step_s: float = 2.0
    margin_s: float = 1.0

    def window_s(self, audio_s: float, quality: str) -> float:
        floor = self.accurate_s if quality == "accurate" else self.fast_s
        wanted = max(floor, audio_s + self.margin_s)
        return min(30.0, math.ceil(wanted / self.step_s) * self.step_s)


LANGUAGE_CANDIDATES = 5
MAX_NEW_TOKENS = 224  # half of Whisper's 448-token context; the prompt takes the rest


def choose_language(probs: dict[str, float], audio_s: float, prior: dict[str, float]) -> str:
    """This utterance's detection weighted by its length, plus what earlier utterances said."""
    scores = add_language_evidence(prior, probs, audio_s)
    return max(scores, key=scores.__getitem__)


def top_candidates(candidates: list[tuple[str, float]], allowed: frozenset[str]) -> dict[str, float]:
    """The likeliest languages from detect_language's sorted (token, prob) list, limited to `allowed`."""
    probs = {token[2:-2]: prob for token, prob in candidates}
    if allowed:
        probs = {lang: p for lang, p in probs.items() if lang in allowed}
    return dict(sorted(probs.items(), key=lambda kv: -kv[1])[:LANGUAGE_CANDIDATES])


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / max(1, len(gzip.compress(data)))


class WhisperTranscriber:
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        window: WindowPolicy | None = None,
        tokens_per_second: float = 10.0,
        languages: frozenset[str] = frozenset(),
    ) -> None:
        self._allowed_languages = languages
        self._model = WhisperModel(model_path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self._ct2: ctranslate2.models.Whisper = self._model.model
        self.device = device
        self._tokenizer = self._model.hf_tokenizer
        self._window = window or WindowPolicy()
        self._tokens_per_second = tokens_per_second
        self.multilingual = self._model.model.is_multilingual
        self._sot = self._token("<|startoftranscript|>")
        self._task_tokens = {task: self._token(f"<|{task}|>") for task in ("transcribe", "translate")}
        self._no_timestamps = self._token("<|notimestamps|>")
        self._eot = self._token("<|endoftext|>")

    def _token(self, text: str) -> int:
        token_id = self._tokenizer.token_to_id(text)
        if token_id is None:
            raise ValueError(f"tokenizer has no {text} token")
        return token_id

    def transcribe(self, requests: Sequence[AsrRequest]) -> list[AsrResult]:
        results: dict[int, AsrResult] = {}
        order = sorted(range(len(requests)), key=lambda i: self._group_key(requests[i]))
        for _, group in groupby(order, key=lambda i: self._group_key(requests[i])):
            indices = list(group)
            for i, result in zip(indices, self._transcribe_group([requests[i] for i in indices]), strict=True):
                results[i] = result
        return [results[i] for i in range(len(requests))]

    def _group_key(self, request: AsrRequest) -> tuple[float, int, str]:
        window_s = self._window.window_s(len(request.audio) / SAMPLE_RATE_HZ, request.quality)
        return (window_s, request.beam_size, request.task)

    def _transcribe_group(self, requests: list[AsrRequest]) -> list[AsrResult]:
        window_s, beam_size, task = self._group_key(requests[0])
        features = self._features(requests, window_s)
        encoded = self._ct2.encode(features, to_cpu=self._ct2.device != "cpu" and len(requests) > 1)
        languages, detected = self._languages(requests, encoded)
        prompts = [self._prompt(language, task) for language in languages]
        max_tokens = self._token_cap(max(len(r.audio) for r in requests) / SAMPLE_RATE_HZ)
        outputs = self._ct2.generate(
            encoded,
            prompts,
            beam_size=beam_size,
            max_length=2 * max_tokens,  # CTranslate2's Whisper yields at most max_length // 2 new tokens
            return_no_speech_prob=True,
            return_scores=True,
            suppress_blank=True,
        )
        results = []
        for request, language, probs, output in zip(requests, languages, detected, outputs, strict=True):
            tokens = output.sequences_ids[0]
            text = self._decode(tokens)
            if window_s < 30 and self._looks_runaway(text, tokens, len(request.audio) / SAMPLE_RATE_HZ):
                text = self._redecode_full_window(request, language, task)
            # With length_penalty 1 the score is the log-probability per token.
            results.append(AsrResult(text, language, output.no_speech_prob, output.scores[0], probs))
        return results

    def _token_cap(self, audio_s: float) -> int:
        # The densest reference speech here runs at 8.5 tokens/s; the cap only stops a looping decoder.
        return min(MAX_NEW_TOKENS, math.ceil(self._tokens_per_second * audio_s) + 10)

    def _looks_runaway(self, text: str, tokens: list[int], audio_s: float) -> bool:
        """Short windows occasionally make Whisper repeat itself until the cap: spot that."""
        hit_cap = len(tokens) >= self._token_cap(audio_s)
        too_many_words = len(text.split()) > 5 * audio_s + 3
        return hit_cap or too_many_words or _compression_ratio(text) > 2.4

    def _features(self, requests: list[AsrRequest], window_s: float) -> ctranslate2.StorageView:
        window_samples = int(window_s * SAMPLE_RATE_HZ)
        frames = int(window_s * FRAMES_PER_SECOND)
        batch = np.zeros((len(requests), self._model.feature_extractor.mel_filters.shape[0], frames), dtype=np.float32)
        for i, request in enumerate(requests):
            padded = np.zeros(window_samples, dtype=np.float32)
            audio = request.audio[:window_samples]
            padded[: len(audio)] = audio
            batch[i] = self._model.feature_extractor(padded)[:, :frames]
        return ctranslate2.StorageView.from_array(batch)

    def _languages(
        self, requests: list[AsrRequest], encoded: ctranslate2.StorageView
    ) -> tuple[list[str], list[dict[str, float]]]:
        if not self.multilingual:
            return ["en"] * len(requests), [{} for _ in requests]
        if all(r.language for r in requests):
            return [r.language for r in requests], [{} for _ in requests]  # type: ignore[misc]
        languages, detected = [], []
        for request, candidates in zip(requests, self._ct2.detect_language(encoded), strict=True):
            probs = top_candidates(candidates, self._allowed_languages)
            detected.append(probs)
            languages.append(
                request.language or choose_language(probs, len(request.audio) / SAMPLE_RATE_HZ, request.language_prior)
            )
        return languages, detected

    def _prompt(self, language: str, task: str = "transcribe") -> list[int]:
        if not self.multilingual:
            return [self._sot, self._no_timestamps]
        return [self._sot, self._token(f"<|{language}|>"), self._task_tokens[task], self._no_timestamps]

    def _decode(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode([t for t in token_ids if t < self._eot]).strip()

    def _redecode_full_window(self, request: AsrRequest, language: str, task: str) -> str:
        # Whisper's own 30 s window does not loop on these; it costs more, and is rarely needed.
        features = self._features([request], 30.0)
        output = self._ct2.generate(
            features,
            [self._prompt(language, task)],
            beam_size=request.beam_size,
            max_length=2 * self._token_cap(len(request.audio) / SAMPLE_RATE_HZ),
            suppress_blank=True,
        )[0]
        return self._decode(output.sequences_ids[0])
