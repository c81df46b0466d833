"""Convert AudioSocket PCM at any slin rate to 16 kHz float32 for VAD and Whisper."""

from __future__ import annotations

import numpy as np
import soxr

TARGET_RATE_HZ = 16_000


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class StreamResampler:
    """Streaming soxr resampler: keeps filter state between frames so 20 ms chunks join without clicks."""

    def __init__(self, input_rate_hz: int) -> None:
        self.input_rate_hz = input_rate_hz
        self._stream = (
            None
            if input_rate_hz == TARGET_RATE_HZ
            else soxr.ResampleStream(input_rate_hz, TARGET_RATE_HZ, 1, dtype="float32", quality="HQ")
        )

    def feed(self, pcm: bytes) -> np.ndarray:
        samples = pcm16_to_float(pcm)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
