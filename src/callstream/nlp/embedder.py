"""Sentence embeddings from all-MiniLM-L6-v2 (int8 ONNX): no torch, no network."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from callstream import models

MAX_TOKENS = 128  # MiniLM was trained on 128-token inputs; a spoken sentence is far shorter
DIMENSIONS = 384


class SentenceEmbedder:
    """Unit-length 384-d vectors; cosine similarity is a dot product. Not thread-safe: one owner thread."""

    def __init__(self, model_path: Path | None = None, tokenizer_path: Path | None = None, threads: int = 1) -> None:
        if model_path is None or tokenizer_path is None:
            default_model, default_tokenizer = models.minilm_paths()
            model_path, tokenizer_path = model_path or default_model, tokenizer_path or default_tokenizer
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        parts = [self._embed_batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts)

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
