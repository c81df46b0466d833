"""Silero VAD as one batched ONNX run per rate for every active leg; per-leg state lives with the leg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

CHUNK_SAMPLES = 512  # one VAD step, 32 ms, counted at 16 kHz (the tracker's unit)
# Silero's native inputs: 32 ms of audio plus the tail of the previous chunk as context.
CHUNK_AT_RATE = {16_000: 512, 8_000: 256}
CONTEXT_AT_RATE = {16_000: 64, 8_000: 32}


def vad_rate_for(input_rate_hz: int) -> int:
    """Telephone audio is judged at 8 kHz: upsampled to 16 kHz, its empty upper band makes
    Silero far less sure of speech (see docs/benchmarks.md). Everything else at 16 kHz."""
    return 8_000 if input_rate_hz == 8_000 else 16_000


class VadState:
    """Recurrent state and audio context of one leg, carried between chunks at one rate."""

    __slots__ = ("context", "rate_hz", "state")

    def __init__(self, rate_hz: int = 16_000) -> None:
        self.rate_hz = rate_hz
        self.state = np.zeros((2, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT_AT_RATE[rate_hz], dtype=np.float32)


class SileroVad:
    def __init__(self, model_path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def run(self, chunks: np.ndarray, states: list[VadState], rate_hz: int) -> np.ndarray:
        """Speech probability for one chunk per leg, all at `rate_hz`; updates each leg's state in place."""
        batch = len(states)
        context = CONTEXT_AT_RATE[rate_hz]
        inputs = np.empty((batch, context + CHUNK_AT_RATE[rate_hz]), dtype=np.float32)
        recurrent = np.empty((2, batch, 128), dtype=np.float32)
        for i, leg_state in enumerate(states):
            inputs[i, :context] = leg_state.context
            recurrent[:, i, :] = leg_state.state
        inputs[:, context:] = chunks
        probability, new_state = self._session.run(
            None, {"input": inputs, "state": recurrent, "sr": np.array(rate_hz, dtype=np.int64)}
        )
        for i, leg_state in enumerate(states):
            leg_state.state = new_state[:, i, :].copy()
            leg_state.context = chunks[i, -context:].copy()
        return probability[:, 0]
