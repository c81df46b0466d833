"""Case category: sentence embeddings against the taxonomy, plus keywords, plus raised risk flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callstream.nlp.taxonomy import Category

TOP_SENTENCES = 2
# Weights chosen by grid search on the tuning transcripts (tests/data/insights_dev.jsonl and
# insights_tune.jsonl); risk flags are weak evidence for a category: a custody, disability or
# gbv case often also reports abuse of a child.
EMBEDDING_WEIGHT = 4.0
KEYWORD_WEIGHT = 0.8
FLAG_WEIGHT = 0.4
TEMPERATURE = 0.35


@dataclass(frozen=True, slots=True)
class CategoryPrototypes:
    category: Category
    vectors: np.ndarray  # description and examples, unit length
    sub_vectors: dict[str, np.ndarray]


def keywords_in(categories: list[Category], text: str) -> frozenset[tuple[int, int]]:
    """(category index, keyword index) of every keyword in one sentence; computed once per sentence."""
    return frozenset(
        (ci, ki)
        for ci, category in enumerate(categories)
        for ki, pattern in enumerate(category.keyword_patterns)
        if pattern.search(text)
    )


def keyword_counts(hits: list[frozenset[tuple[int, int]]], categories: int) -> list[int]:
    """Distinct keywords seen per category over a call's sentences."""
    seen: set[tuple[int, int]] = set().union(*hits) if hits else set()
    return [sum(1 for ci, _ in seen if ci == i) for i in range(categories)]


def embedding_score(vectors: np.ndarray, sentences: np.ndarray) -> float:
    if len(sentences) == 0:
        return 0.0
    best_per_sentence = np.max(sentences @ vectors.T, axis=1)
    top = np.sort(best_per_sentence)[-TOP_SENTENCES:]
    return float(np.mean(top))


def classify(
    prototypes: list[CategoryPrototypes],
    sentence_vectors: np.ndarray,
    keywords: list[int],
    flag_scores: dict[str, float],
) -> list[tuple[Category, float]]:
    """Categories with probabilities (summing to 1), best first. `keywords`: distinct keywords seen
    per category; log(1 + n), because repeating one word is weak evidence."""
    raw = []
    for proto, seen in zip(prototypes, keywords, strict=True):
        category = proto.category
        flags = sum(flag_scores.get(flag_id, 0.0) for flag_id in category.implied_by)
        raw.append(
            EMBEDDING_WEIGHT * embedding_score(proto.vectors, sentence_vectors)
            + KEYWORD_WEIGHT * float(np.log1p(seen))
            + FLAG_WEIGHT * min(flags, 1.5)
        )
    logits = np.array(raw) / TEMPERATURE
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    return [(prototypes[i].category, float(probs[i])) for i in order]


def subcategory(proto: CategoryPrototypes, sentence_vectors: np.ndarray, flag_scores: dict[str, float]) -> str | None:
    """The flag-named sub-category when a flag says it (vane.physical_abuse), else the closest one."""
    by_flag = [(score, f"{proto.category.id}.{flag}") for flag, score in flag_scores.items()]
    for _, sub_id in sorted(by_flag, reverse=True):
        if sub_id in proto.sub_vectors:
            return sub_id
    if not proto.sub_vectors or len(sentence_vectors) == 0:
        return None
    scores = {sub_id: embedding_score(v, sentence_vectors) for sub_id, v in proto.sub_vectors.items()}
    return max(scores, key=scores.__getitem__)
