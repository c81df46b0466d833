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
        num_workers: int = 1,  # CTranslate2 workers that can run batches side by side (offline path)
    ) -> None:
        self._allowed_languages = languages
        self._model = WhisperModel(
            model_path, device=device, compute_type=compute_type, cpu_threads=cpu_threads, num_workers=num_workers
        )
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


# --- Whole 30 s windows with Whisper's own timestamps: the post-call (offline) path ---

WINDOW_S = 30.0
TIMESTAMP_STEP_S = 0.02


@dataclass(frozen=True, slots=True)
class TimedText:
    start_s: float  # from the start of the window
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class WindowResult:
    segments: list[TimedText]
    # Where the decoder stopped: the window's speech is covered up to here. Short of the speech's
    # end only when it ran out of tokens (dense speech) or looped; the caller decodes the rest again.
    covered_s: float
    avg_logprob: float


class WindowDecoder:
    """Offline decoding of whole windows of packed speech, batched, with timestamps.

    Sits beside WhisperTranscriber and shares its model; separate so the live path stays untouched.
    Call from one thread; CTranslate2 releases the GIL while it encodes and generates.
    """

    def __init__(self, transcriber: WhisperTranscriber) -> None:
        self._t = transcriber
        self._timestamp_begin = transcriber._no_timestamps + 1

    @property
    def multilingual(self) -> bool:
        return self._t.multilingual

    @property
    def allowed_languages(self) -> frozenset[str]:
        return self._t._allowed_languages

    def features(self, windows: Sequence[np.ndarray]) -> ctranslate2.StorageView:
        """Each window at most 30 s of 16 kHz audio; zero-padded to 30 s as Whisper was trained."""
        return self._t._features([AsrRequest(w, language=None) for w in windows], WINDOW_S)

    def encode(self, features: ctranslate2.StorageView) -> ctranslate2.StorageView:
        return self._t._ct2.encode(features, to_cpu=False)

    def detect_languages(self, encoded: ctranslate2.StorageView) -> list[dict[str, float]]:
        """Top language candidates per window (features or encoder output), limited to the allowed set."""
        if not self.multilingual:
            return [{"en": 1.0} for _ in range(encoded.shape[0])]
        return [top_candidates(c, self.allowed_languages) for c in self._t._ct2.detect_language(encoded)]

    def generate(
        self,
        encoded: ctranslate2.StorageView,
        languages: Sequence[str],
        *,
        speech_s: Sequence[float],
        task: str = "transcribe",
        beam_size: int = 1,
    ) -> PendingWindows:
        """Features or encoder output in; runs on a free CTranslate2 worker while the caller goes on."""
        prompts = [self._timed_prompt(language, task) for language in languages]
        outputs = self._t._ct2.generate(
            encoded,
            prompts,
            asynchronous=True,
            beam_size=beam_size,
            max_length=2 * MAX_NEW_TOKENS,  # CTranslate2 yields at most max_length // 2 new tokens
            return_scores=True,
            suppress_blank=True,
        )
        return PendingWindows(self, outputs, list(speech_s))

    def _timed_prompt(self, language: str, task: str) -> list[int]:
        if not self.multilingual:
            return [self._t._sot]
        return [self._t._sot, self._t._token(f"<|{language}|>"), self._t._task_tokens[task]]

    def _parse(self, tokens: list[int], score: float, speech_s: float) -> WindowResult:
        segments: list[TimedText] = []
        text_tokens: list[int] = []
        start_s = last_s = 0.0
        for token in tokens:
            if token >= self._timestamp_begin:
                time_s = (token - self._timestamp_begin) * TIMESTAMP_STEP_S
                if text_tokens:
                    self._add(segments, start_s, time_s, text_tokens)
                    text_tokens = []
                    last_s = time_s
                start_s = time_s
            elif token < self._t._eot:
                text_tokens.append(token)
        if text_tokens and len(tokens) < MAX_NEW_TOKENS:
            # Whisper ended without a closing timestamp: the text runs to the end of the speech.
            self._add(segments, start_s, speech_s, text_tokens)
            last_s = speech_s
        # Otherwise the window counts as covered up to its last closing timestamp only: Whisper in
        # timestamp mode often leaves a short last sentence for "the next window", which the caller gives it.
        if _compression_ratio(" ".join(s.text for s in segments)) > 2.4:
            return WindowResult([], 0.0, score)  # a loop: the caller retries with a beam
        return WindowResult(segments, last_s, score)

    def _add(self, segments: list[TimedText], start_s: float, end_s: float, tokens: list[int]) -> None:
        text = self._t._decode(tokens)
        if text:
            segments.append(TimedText(start_s, max(start_s, end_s), text))


class PendingWindows:
    """Windows being decoded by a CTranslate2 worker; result() waits (without the GIL) and parses."""

    def __init__(self, decoder: WindowDecoder, outputs: list, speech_s: list[float]) -> None:
        self._decoder = decoder
        self._outputs = outputs
        self._speech_s = speech_s

    def result(self) -> list[WindowResult]:
        results = []
        for pending, audio_s in zip(self._outputs, self._speech_s, strict=True):
            output = pending.result()
            results.append(self._decoder._parse(output.sequences_ids[0], output.scores[0], audio_s))
        return results
