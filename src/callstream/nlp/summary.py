"""A short extractive summary: the caller's most central sentences, in the order they were said."""

from __future__ import annotations

import numpy as np

MAX_SENTENCES = 3
MAX_WORDS = 70
FLAG_BONUS = 0.25  # a sentence that raised a risk flag belongs in the summary
ENTITY_BONUS = 0.05  # per entity, up to three: who, how old, where


def summarise(texts: list[str], vectors: np.ndarray, flagged: list[bool], entity_counts: list[int]) -> str:
    if not texts:
        return ""
    centroid = vectors.mean(axis=0)
    norm = np.linalg.norm(centroid)
    centrality = vectors @ (centroid / norm) if norm > 0 else np.zeros(len(texts))
    scores = [
        float(c) + FLAG_BONUS * f + ENTITY_BONUS * min(n, 3)
        for c, f, n in zip(centrality, flagged, entity_counts, strict=True)
    ]
    chosen: list[int] = []
    words = 0
    for i in sorted(range(len(texts)), key=lambda i: -scores[i]):
        length = len(texts[i].split())
        if len(texts[i].split()) < 4 or texts[i] in (texts[j] for j in chosen):
            continue  # "Yes." and "Okay, thank you." are not a summary
        if chosen and words + length > MAX_WORDS:
            continue
        chosen.append(i)
        words += length
        if len(chosen) == MAX_SENTENCES:
            break
    return " ".join(texts[i] for i in sorted(chosen))
