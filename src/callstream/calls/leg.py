"""One AudioSocket connection's audio: resampled into a ring buffer, with its own VAD state and tracker."""

from __future__ import annotations

import numpy as np

from callstream.audio.resample import TARGET_RATE_HZ, StreamResampler
from callstream.audio.ringbuffer import RingBuffer
from callstream.vad.model import CHUNK_SAMPLES, VadState, vad_rate_for
from callstream.vad.tracker import TrackerConfig, VadTracker


class LegAudio:
    """Sample index 0 is the first audio frame; `origin_s` places it on the call's clock."""

    def __init__(self, leg: str, tracker_config: TrackerConfig, ring_capacity_samples: int) -> None:
        self.leg = leg
        self.origin_s = 0.0
        self.last_audio_s: float | None = None  # call-clock time of the newest frame; None before the first
        self.ring = RingBuffer(ring_capacity_samples)
        self.vad_state = VadState()
        self.tracker = VadTracker(tracker_config)
        self.vad_cursor_samples = 0  # next sample the VAD has not seen
        self.silent_chunks = 0  # VAD chunks since the leg was last in speech
        self.input_rate_hz: int | None = None
        self._resampler: StreamResampler | None = None

    def feed_pcm(self, pcm: bytes, rate_hz: int, now_s: float) -> None:
        if self.last_audio_s is None:
            self.origin_s = now_s - len(pcm) / 2 / rate_hz
        self.last_audio_s = now_s
        if self._resampler is None or self._resampler.input_rate_hz != rate_hz:
            if self._resampler is not None:
                self.ring.write(self._resampler.flush())
            self._resampler = StreamResampler(rate_hz)
            self.input_rate_hz = rate_hz
            if vad_rate_for(rate_hz) != self.vad_state.rate_hz:
                self.vad_state = VadState(vad_rate_for(rate_hz))
        self.ring.write(self._resampler.feed(pcm))

    def fill_gap(self, now_s: float, min_gap_s: float) -> None:
        """Asterisk sends nothing while a DTMF digit plays (~0.5 s): count such a pause as silence.

        Without this the VAD would wait for the next frame to see the silence, and the
        leg's clock would fall behind the call's by every pause.
        """
        if self.last_audio_s is None or now_s - self.last_audio_s < min_gap_s:
            return
        behind_s = self.origin_s + self.ring.end_sample / TARGET_RATE_HZ
        missing = int((now_s - behind_s) * TARGET_RATE_HZ)
        if missing > 0:
            if self._resampler is not None:
                self.ring.write(self._resampler.flush())
                self._resampler = None
            self.ring.write(np.zeros(missing, dtype=np.float32))
        self.last_audio_s = now_s

    def flush(self) -> None:
        if self._resampler is not None:
            self.ring.write(self._resampler.flush())
        # Pad to a whole VAD chunk so the tail of the last word is seen.
        tail = (-self.ring.end_sample) % CHUNK_SAMPLES
        self.ring.write(np.zeros(tail, dtype=np.float32))

    def pending_vad_chunks(self) -> np.ndarray:
        """The whole 32 ms chunks the VAD has not seen, at the leg's VAD rate: shape [n, 512] or [n, 256]."""
        n = (self.ring.end_sample - self.vad_cursor_samples) // CHUNK_SAMPLES
        step = TARGET_RATE_HZ // self.vad_state.rate_hz
        if n == 0:
            return np.zeros((0, CHUNK_SAMPLES // step), dtype=np.float32)
        audio = self.ring.read(self.vad_cursor_samples, self.vad_cursor_samples + n * CHUNK_SAMPLES)
        if len(audio) < n * CHUNK_SAMPLES:  # fell out of the ring: the VAD lagged by more than its capacity
            audio = np.concatenate([np.zeros(n * CHUNK_SAMPLES - len(audio), np.float32), audio])
        # An 8 kHz leg's 16 kHz audio has nothing above 4 kHz, so every other sample is a clean 8 kHz signal.
        return audio[::step].reshape(n, CHUNK_SAMPLES // step)

    def seconds(self, sample: int) -> float:
        return round(self.origin_s + sample / TARGET_RATE_HZ, 3)
