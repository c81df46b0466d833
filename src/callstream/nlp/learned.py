"""Learned scorers for risk flags and case category: logistic regressions over sentence embeddings,
hashed word and character n-grams and, for flags, hashed clause features (nlp/clauses.py).

Trained by scripts/train_insights.py on the labelled calls in tests/data (docs/labelling.md);
the weights ship in nlp/data/insights_model.npz. Embeddings carry meaning across paraphrase; the
hashed n-grams carry the exact words, Swahili ones included, that a small English encoder blurs.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callstream.nlp.embedder import DIMENSIONS

MODEL_PATH = Path(__file__).parent / "data" / "insights_model.npz"
FORMAT_VERSION = 3  # 2: sentence features include clause features; 3: clauses parsed without NER
HASH_BITS = 13
HASH_SIZE = 1 << HASH_BITS
CHAR_NGRAM = 4  # inside words: "ananipiga" and "alinipiga" share "nipi", "ipig", "piga"
# The clause features' length beside the n-grams' (each unit length before weighting). Out of fold,
# with a first version of the features, flag precision at recall 0.95 was 0.628 at 0.5, 0.652 at 1
# and 0.656 at 2 (0.610 without them); docs/insights.md has the shipped version's.
CLAUSE_WEIGHT = 2.0
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def hashed_ngrams(text: str) -> dict[int, float]:
    """Word unigrams, word bigrams and in-word character 4-grams, hashed into HASH_SIZE buckets and
    scaled to unit length. crc32, not hash(): the buckets must be the same in every process."""
    return unit_length(ngram_counts(text))


def ngram_counts(text: str) -> dict[int, float]:
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [f"w:{w}" for w in words]
    grams += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for w in words:
        padded = f"<{w}>"
        grams += [f"c:{padded[i : i + CHAR_NGRAM]}" for i in range(max(1, len(padded) - CHAR_NGRAM + 1))]
    return _bucket_counts(grams)


def sentence_features(text: str, clauses: Sequence[str]) -> dict[int, float]:
    """A caller sentence as the flag scorer reads it: its n-grams and its clause features, each unit
    length, the clauses scaled by CLAUSE_WEIGHT, in one hashed space (the "x:" prefix makes a clause
    feature hash apart from an n-gram of the same text; buckets may still collide, as n-grams do)."""
    features = hashed_ngrams(text)
    clause_part = unit_length(_bucket_counts(f"x:{c}" for c in clauses))
    add_counts(features, {k: CLAUSE_WEIGHT * v for k, v in clause_part.items()})
    return features


def _bucket_counts(grams: Iterable[str]) -> dict[int, float]:
    counts: dict[int, float] = {}
    for gram in grams:
        bucket = zlib.crc32(gram.encode()) & (HASH_SIZE - 1)
        counts[bucket] = counts.get(bucket, 0.0) + 1.0
    return counts


def add_counts(total: dict[int, float], counts: dict[int, float]) -> None:
    for bucket, value in counts.items():
        total[bucket] = total.get(bucket, 0.0) + value


def unit_length(counts: dict[int, float]) -> dict[int, float]:
    norm = float(np.sqrt(sum(v * v for v in counts.values()))) or 1.0
    return {k: v / norm for k, v in counts.items()}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def softmax(x: np.ndarray) -> np.ndarray:
    """Over the last axis: one call's logits, or a row per call."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _linear(dense: np.ndarray, hashed: dict[int, float], weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Logits of dense features followed by HASH_SIZE sparse n-gram features."""
    d = len(dense)
    logits = dense @ weights[:d] + bias
    if hashed:
        buckets = np.fromiter(hashed.keys(), dtype=np.int64, count=len(hashed)) + d
        values = np.fromiter(hashed.values(), dtype=np.float32, count=len(hashed))
        logits = logits + values @ weights[buckets]
    return logits


@dataclass(frozen=True, slots=True)
class FlagModel:
    """Two views of each risk flag, averaged: the likeliest caller sentence so far (what was said,
    who did what to whom in it, and what it answered), and the call so far as a whole (mean
    embedding and all its n-grams), which sees a danger spread over several sentences. A call
    raises a flag when the average reaches `threshold`, chosen in cross-validation for recall."""

    flag_ids: tuple[str, ...]
    sentence_weights: np.ndarray  # (2 * DIMENSIONS + HASH_SIZE, flags)
    sentence_bias: np.ndarray  # (flags,)
    call_weights: np.ndarray  # (DIMENSIONS + HASH_SIZE, flags)
    call_bias: np.ndarray
    threshold: float

    def sentence_probabilities(self, vector: np.ndarray, context: np.ndarray, hashed: dict[int, float]) -> np.ndarray:
        return sigmoid(_linear(np.concatenate([vector, context]), hashed, self.sentence_weights, self.sentence_bias))

    def call_probabilities(self, mean_vector: np.ndarray, hashed: dict[int, float]) -> np.ndarray:
        return sigmoid(_linear(mean_vector, hashed, self.call_weights, self.call_bias))

    @staticmethod
    def combine(sentence_max: np.ndarray, call: np.ndarray) -> np.ndarray:
        return (sentence_max + call) / 2


@dataclass(frozen=True, slots=True)
class CategoryModel:
    """Call-level softmax over categories from the mean caller embedding, the call's learned flag
    scores (a child's abuse is `vane`, an adult's is `gbv`), and the hashed n-grams of everything
    the caller said."""

    category_ids: tuple[str, ...]
    weights: np.ndarray  # (DIMENSIONS + flags + HASH_SIZE, categories)
    bias: np.ndarray

    def probabilities(self, mean_vector: np.ndarray, flag_scores: np.ndarray, hashed: dict[int, float]) -> np.ndarray:
        return softmax(_linear(np.concatenate([mean_vector, flag_scores]), hashed, self.weights, self.bias))


@dataclass(frozen=True, slots=True)
class InsightsModel:
    flags: FlagModel
    categories: CategoryModel
    trained_on: str  # what it was trained on, for the logs

    def save(self, path: Path = MODEL_PATH) -> None:
        np.savez_compressed(
            path,
            format_version=np.array(FORMAT_VERSION),
            hash_bits=np.array(HASH_BITS),
            clause_weight=np.array(CLAUSE_WEIGHT),
            flag_ids=np.array(self.flags.flag_ids),
            sentence_weights=self.flags.sentence_weights.astype(np.float16),
            sentence_bias=self.flags.sentence_bias,
            call_weights=self.flags.call_weights.astype(np.float16),
            call_bias=self.flags.call_bias,
            flag_threshold=np.array(self.flags.threshold),
            category_ids=np.array(self.categories.category_ids),
            category_weights=self.categories.weights.astype(np.float16),
            category_bias=self.categories.bias,
            trained_on=np.array(self.trained_on),
        )


class ModelMismatch(ValueError):
    pass


def load(path: Path = MODEL_PATH) -> InsightsModel:
    with np.load(path, allow_pickle=False) as data:
        if (
            int(data["format_version"]) != FORMAT_VERSION
            or int(data["hash_bits"]) != HASH_BITS
            or float(data["clause_weight"]) != CLAUSE_WEIGHT
        ):
            raise ModelMismatch(f"{path} was written by another version; retrain with scripts/train_insights.py")
        flags = FlagModel(
            tuple(str(f) for f in data["flag_ids"]),
            data["sentence_weights"].astype(np.float32),
            data["sentence_bias"].astype(np.float32),
            data["call_weights"].astype(np.float32),
            data["call_bias"].astype(np.float32),
            float(data["flag_threshold"]),
        )
        categories = CategoryModel(
            tuple(str(c) for c in data["category_ids"]),
            data["category_weights"].astype(np.float32),
            data["category_bias"].astype(np.float32),
        )
        return InsightsModel(flags, categories, str(data["trained_on"]))


@dataclass(slots=True)
class CallScores:
    """What the learned scorers keep for one call, updated sentence by sentence."""

    sentence_max: np.ndarray  # (flags,): the highest sentence probability so far
    best_sentence: list[tuple[str, float] | None]  # per flag: (text, call time) of that sentence
    vector_sum: np.ndarray
    sentences: int
    ngrams: dict[int, float]  # hashed n-gram counts of all the caller's words

    @classmethod
    def empty(cls, flags: int) -> CallScores:
        return cls(np.zeros(flags, np.float32), [None] * flags, np.zeros(DIMENSIONS, np.float32), 0, {})

    def add_words(self, text: str) -> None:
        add_counts(self.ngrams, ngram_counts(text))

    def add_sentence(
        self, model: FlagModel, text: str, clauses: Sequence[str], vector: np.ndarray, context: np.ndarray, at_s: float
    ) -> None:
        probs = model.sentence_probabilities(vector, context, sentence_features(text, clauses))
        for k in np.flatnonzero(probs > self.sentence_max):
            self.best_sentence[k] = (text, at_s)
        self.sentence_max = np.maximum(self.sentence_max, probs)
        self.vector_sum += vector
        self.sentences += 1

    def mean_vector(self) -> np.ndarray:
        return self.vector_sum / max(self.sentences, 1)

    def flag_scores(self, model: FlagModel) -> np.ndarray:
        if not self.sentences:
            return np.zeros_like(self.sentence_max)
        return model.combine(self.sentence_max, model.call_probabilities(self.mean_vector(), unit_length(self.ngrams)))
