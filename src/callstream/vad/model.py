"""Silero VAD as one batched ONNX run for every active leg; per-leg state lives with the leg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

CHUNK_SAMPLES = 512  # 32 ms at 16 kHz, what the model was trained on
CONTEXT_SAMPLES = 64
STATE_SHAPE = (2, 128)  # per leg; the model takes [2, batch, 128]


class VadState:
    """Recurrent state and audio context of one leg, carried between chunks."""

    __slots__ = ("context", "state")

    def __init__(self) -> None:
        self.state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self.context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)


class SileroVad:
    def __init__(self, model_path: Path, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._sample_rate = np.array(16_000, dtype=np.int64)

    def run(self, chunks: np.ndarray, states: list[VadState]) -> np.ndarray:
        """Speech probability for one 512-sample chunk per leg; updates each leg's state in place."""
        batch = len(states)
        inputs = np.empty((batch, CONTEXT_SAMPLES + CHUNK_SAMPLES), dtype=np.float32)
        recurrent = np.empty((2, batch, 128), dtype=np.float32)
        for i, leg_state in enumerate(states):
            inputs[i, :CONTEXT_SAMPLES] = leg_state.context
            recurrent[:, i, :] = leg_state.state
        inputs[:, CONTEXT_SAMPLES:] = chunks
        probability, new_state = self._session.run(None, {"input": inputs, "state": recurrent, "sr": self._sample_rate})
        for i, leg_state in enumerate(states):
            leg_state.state = new_state[:, i, :].copy()
            leg_state.context = chunks[i, -CONTEXT_SAMPLES:].copy()
        return probability[:, 0]
