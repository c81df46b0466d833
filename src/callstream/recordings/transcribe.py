"""Post-call transcription of a decoded recording: whole-file VAD, 30 s packed windows, batched Whisper."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import ctranslate2
import numpy as np
import structlog

from callstream import models
from callstream.asr.transcriber import add_language_evidence
from callstream.asr.whisper import WINDOW_S, PendingWindows, WhisperTranscriber, WindowDecoder, WindowResult
from callstream.recordings.chunks import (
    RATE_HZ,
    Window,
    pack_windows,
    speech_probabilities,
    speech_regions,
    split_long,
)
from callstream.recordings.decode import DecodedAudio
from callstream.vad.model import SileroVad

log = structlog.get_logger()

DEFAULT_LEGS = {0: "caller", 1: "agent"}
VAD_SHARE = 0.05  # of the progress bar; VAD is cheap next to Whisper


class TranscriptionCancelled(Exception):
    """should_stop() said so between two batches."""


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    # Chosen by scripts/bench_offline.py (docs/offline-transcription.md).
    beam_size: int = 1
    batch_size: int = 8
    window_s: float = WINDOW_S
    max_gap_s: float = 0.5  # silence kept between packed speech regions
    retry_beam_size: int = 5  # for a window whose greedy decode looped
    # Batches in flight at once, each on its own CTranslate2 worker with cpu_threads / workers threads.
    workers: int = 1


@dataclass(frozen=True, slots=True)
class OfflineSegment:
    start_s: float
    end_s: float
    text: str
    leg: str
    language: str
    translation: str | None = None  # English, when translation was asked for and the speech is not English


@dataclass(frozen=True, slots=True)
class OfflineResult:
    duration_s: float
    language: str  # the language of most of the speech
    segments: list[OfflineSegment]
    leg_languages: dict[str, str] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)  # speech_s, windows, vad_s, asr_s


@dataclass
class _Job:
    window: Window
    audio: np.ndarray
    retried: bool = False  # decoded again with a beam after a loop
    final: bool = False  # the rest of a window: whatever it yields, nothing more is re-queued


@dataclass
class _Batch:
    jobs: list[_Job]
    languages: list[str]
    pending: PendingWindows
    translated: PendingWindows | None


class OfflineTranscriber:
    """Synchronous and thread-confined: build and call it in one worker thread (or process)."""

    def __init__(self, whisper: WhisperTranscriber, vad: SileroVad, options: OfflineOptions | None = None) -> None:
        self._decoder = WindowDecoder(whisper)
        self._vad = vad
        self.options = options or OfflineOptions()

    @classmethod
    def load(
        cls,
        model: str = "base",
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        languages: frozenset[str] = frozenset(),
        options: OfflineOptions | None = None,
    ) -> OfflineTranscriber:
        options = options or OfflineOptions()
        threads = cpu_threads or (os.cpu_count() or 1)
        whisper = WhisperTranscriber(
            models.resolve_whisper(model),
            device=device,
            compute_type=compute_type,
            cpu_threads=max(1, threads // options.workers) if device == "cpu" else threads,
            languages=languages,
            num_workers=options.workers,
        )
        return cls(whisper, SileroVad(models.silero_vad_path()), options)

    def transcribe(
        self,
        audio: DecodedAudio,
        *,
        language: str | None = None,
        translate: bool = False,
        channel_legs: Mapping[int, str] | None = None,
        progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> OfflineResult:
        run = _Run(self, audio, language, translate, channel_legs or DEFAULT_LEGS, progress, should_stop)
        return run.execute()


class _Run:
    """One recording through the pipeline; holds its per-channel language evidence and results."""

    def __init__(
        self,
        owner: OfflineTranscriber,
        audio: DecodedAudio,
        language: str | None,
        translate: bool,
        legs: Mapping[int, str],
        progress: Callable[[float], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.decoder = owner._decoder
        self.vad = owner._vad
        self.options = owner.options
        self.audio = audio
        self.hint = language if self.decoder.multilingual else "en"
        self.translate = translate and self.decoder.multilingual
        self.legs = {ch: legs.get(ch, "caller" if ch == 0 else f"channel{ch}") for ch in range(len(audio.channels))}
        self.progress = progress or (lambda _: None)
        self.should_stop = should_stop or (lambda: False)
        self.languages: dict[int, str] = {}
        self.evidence: dict[int, dict[str, float]] = {}
        self.segments: list[OfflineSegment] = []

    def execute(self) -> OfflineResult:
        started = time.perf_counter()
        self.progress(0.0)
        jobs = self._plan()
        vad_s = time.perf_counter() - started
        total = sum(len(j.audio) for j in jobs) or 1
        done = 0
        queue = deque(jobs)
        inflight: deque[_Batch] = deque()
        while queue or inflight:
            while queue and len(inflight) < self.options.workers:
                self._check_stop()
                inflight.append(
                    self._submit([queue.popleft() for _ in range(min(self.options.batch_size, len(queue)))])
                )
            batch = inflight.popleft()
            queue.extendleft(reversed(self._finish(batch)))
            done += sum(len(j.audio) for j in batch.jobs if not (j.retried or j.final))
            self.progress(VAD_SHARE + (1 - VAD_SHARE) * min(1.0, done / total))
        self.segments.sort(key=lambda s: (s.start_s, s.leg))
        speech_s = sum(len(j.audio) for j in jobs) / RATE_HZ
        self.progress(1.0)
        return OfflineResult(
            duration_s=self.audio.duration_s,
            language=self._main_language(),
            segments=self.segments,
            leg_languages={self.legs[ch]: lang for ch, lang in self.languages.items()},
            stats={
                "speech_s": round(speech_s, 2),
                "windows": len(jobs),
                "vad_s": round(vad_s, 3),
                "asr_s": round(time.perf_counter() - started - vad_s, 3),
            },
        )

    def _check_stop(self) -> None:
        if self.should_stop():
            raise TranscriptionCancelled("transcription cancelled")

    def _plan(self) -> list[_Job]:
        window_samples = int(self.options.window_s * RATE_HZ)
        jobs = []
        for ch, samples in enumerate(self.audio.channels):
            self._check_stop()
            probs = speech_probabilities(self.vad, samples, self.audio.source_rate_hz)
            regions = [(start, min(end, len(samples))) for start, end in speech_regions(probs)]
            regions = split_long(regions, probs, window_samples)
            windows = pack_windows(
                ch, regions, window_samples=window_samples, max_gap_samples=int(self.options.max_gap_s * RATE_HZ)
            )
            jobs += [_Job(w, w.audio(samples)) for w in windows]
            self.progress(VAD_SHARE * (ch + 1) / len(self.audio.channels))
        # Time order across channels, so the first batch carries the opening speech of every leg.
        return sorted(jobs, key=lambda j: (j.window.source_start, j.window.channel))

    def _submit(self, jobs: list[_Job]) -> _Batch:
        features = self.decoder.features([j.audio for j in jobs])
        source = features
        if self.translate or any(j.window.channel not in self.languages for j in jobs):
            # Encode here once: language detection and a second (translate) pass reuse the encoder output.
            source = self.decoder.encode(features)
            self._settle_languages(jobs, source)
        languages = [self.languages[j.window.channel] for j in jobs]
        speech_s = [len(j.audio) / RATE_HZ for j in jobs]
        beam = max(self.options.retry_beam_size if j.retried else self.options.beam_size for j in jobs)
        pending = self.decoder.generate(source, languages, speech_s=speech_s, beam_size=beam)
        translated = None
        if self.translate and any(lang != "en" for lang in languages):
            translated = self.decoder.generate(source, languages, speech_s=speech_s, task="translate", beam_size=beam)
        return _Batch(jobs, languages, pending, translated)

    def _finish(self, batch: _Batch) -> list[_Job]:
        """Collect one batch; returns jobs to decode again (a looped window, or the rest of a cut-off one)."""
        results = batch.pending.result()
        translations = batch.translated.result() if batch.translated else [None] * len(results)
        again = []
        for job, result, translation, lang in zip(batch.jobs, results, translations, batch.languages, strict=True):
            self._collect(job, result, translation if lang != "en" else None, lang)
            again += self._leftover(job, result)
        return again

    def _settle_languages(self, batch: list[_Job], encoded: ctranslate2.StorageView) -> None:
        pending = [i for i, j in enumerate(batch) if j.window.channel not in self.languages]
        if not pending:
            return
        if self.hint:
            for i in pending:
                self.languages[batch[i].window.channel] = self.hint
            return
        # Evidence from every window of the leg in this first batch, weighted by its seconds of speech.
        detected = self.decoder.detect_languages(encoded)
        for i in pending:
            ch = batch[i].window.channel
            probs = detected[i]
            self.evidence[ch] = add_language_evidence(self.evidence.get(ch, {}), probs, len(batch[i].audio) / RATE_HZ)
        for ch in {batch[i].window.channel for i in pending}:
            evidence = self.evidence.get(ch) or {"en": 1.0}
            self.languages[ch] = max(evidence, key=evidence.__getitem__)

    def _collect(self, job: _Job, result: WindowResult, translation: WindowResult | None, language: str) -> None:
        w = job.window
        for seg in result.segments:
            start_s = w.to_source_s(seg.start_s, is_end=False)
            end_s = max(start_s, w.to_source_s(seg.end_s, is_end=True))
            text = None
            if translation is not None:
                text = " ".join(t.text for t in translation.segments if _best_match(t, result) is seg)
            self.segments.append(
                OfflineSegment(round(start_s, 2), round(end_s, 2), seg.text, self.legs[w.channel], language, text)
            )

    def _leftover(self, job: _Job, result: WindowResult) -> list[_Job]:
        speech_s = len(job.audio) / RATE_HZ
        if result.covered_s >= speech_s - 1.0 or job.retried or job.final:
            return []
        if result.covered_s <= 0:  # a loop from the first token: once more with a beam
            log.info("offline_window_retry", reason="loop", start_s=job.window.source_start / RATE_HZ)
            return [_Job(job.window, job.audio, retried=True)]
        rest = job.window.tail(result.covered_s)
        if rest is None:
            return []
        return [_Job(rest, rest.audio(self.audio.channels[rest.channel]), final=True)]

    def _main_language(self) -> str:
        if not self.languages:
            return self.hint or "en"
        speech: dict[str, float] = {}
        for seg in self.segments:
            speech[seg.language] = speech.get(seg.language, 0.0) + seg.end_s - seg.start_s
        return max(speech, key=speech.__getitem__) if speech else self.languages[min(self.languages)]


def _best_match(piece, result: WindowResult):
    """The transcribed segment a translated one overlaps most (both in window time)."""

    def overlap(seg) -> float:
        return min(seg.end_s, piece.end_s) - max(seg.start_s, piece.start_s)

    return max(result.segments, key=overlap, default=None)
