"""Per-leg utterance state machine over VAD probabilities: pure, no I/O, counted in samples."""

from __future__ import annotations

from dataclasses import dataclass

from callstream.vad.model import CHUNK_SAMPLES


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    threshold: float = 0.5
    negative_threshold: float = 0.35  # hysteresis: speech continues until the probability drops below this
    min_silence_samples: int = 4_800  # 300 ms of silence ends an utterance
    min_speech_samples: int = 4_000  # shorter bursts (clicks, coughs) are dropped
    pre_roll_samples: int = 3_200  # 200 ms before the detected start, where word onsets hide
    post_roll_samples: int = 1_600  # 100 ms after the last speech chunk; must not exceed min_silence_samples
    max_utterance_samples: int = 240_000  # 15 s: Whisper's window is 30 s and latency matters


@dataclass(frozen=True, slots=True)
class UtteranceStarted:
    start_sample: int


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    start_sample: int
    end_sample: int
    forced: bool  # cut at the maximum length, speech goes on


@dataclass(frozen=True, slots=True)
class UtteranceDropped:
    start_sample: int
    end_sample: int


@dataclass(frozen=True, slots=True)
class UtterancePaused:
    """Silence has lasted the post-roll: if it goes on, the utterance will end exactly here."""

    start_sample: int
    end_sample: int


@dataclass(frozen=True, slots=True)
class UtteranceResumed:
    """Speech came back after a pause; an end announced by UtterancePaused no longer holds."""

    start_sample: int


TrackerEvent = UtteranceStarted | UtteranceEnded | UtteranceDropped | UtterancePaused | UtteranceResumed


class VadTracker:
    def __init__(self, config: TrackerConfig) -> None:
        self._config = config
        self._next_chunk_sample = 0
        self._speech_start: int | None = None
        self._last_speech_end = 0
        self._speech_samples = 0
        self._paused = False

    @property
    def in_speech(self) -> bool:
        return self._speech_start is not None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def utterance_start(self) -> int | None:
        return self._speech_start

    def feed(self, probability: float) -> list[TrackerEvent]:
        """One chunk's probability; chunks are consecutive, CHUNK_SAMPLES each."""
        cfg = self._config
        chunk_start = self._next_chunk_sample
        chunk_end = chunk_start + CHUNK_SAMPLES
        self._next_chunk_sample = chunk_end
        if self._speech_start is None:
            if probability >= cfg.threshold:
                self._speech_start = max(0, chunk_start - cfg.pre_roll_samples)
                self._last_speech_end = chunk_end
                self._speech_samples = CHUNK_SAMPLES
                return [UtteranceStarted(self._speech_start)]
            return []
        events: list[TrackerEvent] = []
        if probability >= cfg.negative_threshold:
            self._last_speech_end = chunk_end
            self._speech_samples += CHUNK_SAMPLES
            if self._paused:
                self._paused = False
                events.append(UtteranceResumed(self._speech_start))
        if chunk_end - self._speech_start >= cfg.max_utterance_samples:
            return events + self._cut_forced(chunk_end)
        silence = chunk_end - self._last_speech_end
        if silence >= cfg.min_silence_samples:
            return [*events, self._finish(min(chunk_end, self._last_speech_end + cfg.post_roll_samples))]
        if (
            silence >= max(cfg.post_roll_samples, CHUNK_SAMPLES)
            and not self._paused
            and self._speech_samples >= cfg.min_speech_samples
        ):
            self._paused = True
            events.append(UtterancePaused(self._speech_start, self._last_speech_end + cfg.post_roll_samples))
        return events

    def flush(self) -> list[TrackerEvent]:
        """End of stream: close an open utterance at the last speech."""
        if self._speech_start is None:
            return []
        return [self._finish(min(self._next_chunk_sample, self._last_speech_end + self._config.post_roll_samples))]

    def _finish(self, end_sample: int) -> TrackerEvent:
        start = self._speech_start
        assert start is not None
        self._speech_start = None
        self._paused = False
        if self._speech_samples < self._config.min_speech_samples:
            return UtteranceDropped(start, end_sample)
        return UtteranceEnded(start, end_sample, forced=False)

    def _cut_forced(self, end_sample: int) -> list[TrackerEvent]:
        start = self._speech_start
        assert start is not None
        # Speech goes on: close this piece and open the next one at the same sample.
        self._speech_start = end_sample
        self._speech_samples = 0
        self._paused = False
        return [UtteranceEnded(start, end_sample, forced=True), UtteranceStarted(end_sample)]
