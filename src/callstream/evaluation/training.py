"""Training the learned insights scorers (nlp/learned.py) on labelled calls (docs/labelling.md).

Risk flags are learned per sentence. A sentence is a positive example of a flag when it overlaps the
caller's words quoted as that flag's evidence; sentences of calls without the flag are negatives;
the other sentences of a flagged call are left out (they may or may not say it again). Calls
labelled before evidence was recorded contribute their single most likely sentence per flag, as
scored by a first model trained without them (one round of multiple-instance learning).

The call scorer is trained on every prefix of every call (the call after each caller turn), since
the live engine scores each prefix and a raised flag stays raised: a prefix is a positive once the
flag's evidence has been said. The category scorer learns from whole calls, with each call's
out-of-fold flag scores as features.

Everything here is plain numpy: full-batch logistic regression with Adam and an L2 penalty.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from callstream.evaluation.insights import LabelledCall
from callstream.nlp import learned
from callstream.nlp.clauses import ClauseReader
from callstream.nlp.embedder import DIMENSIONS, SentenceEmbedder
from callstream.nlp.taxonomy import RISK_FLAG_IDS
from callstream.nlp.text import may_raise_flag, sentences

UNKNOWN = -1.0
# Each set was written by a different annotator; cross-validation holds out one set at a time, so
# it measures how the scorers do on calls written by someone they never learned from.
TRAINING_SETS = (
    "dev",
    "tune",
    "tune2",
    "tune3",
    "train1",
    "train2",
    "train3",
    "train4",
    "train5",
    "train6",
    "train7",
    "train8",
    "train9",
    "train10",
    "train11",
    "train12",
    "train13",
)
HELD_OUT_SETS = ("eval", "eval2", "eval3", "eval4")  # never trained on


@dataclass
class CallFeatures:
    call: LabelledCall
    source: str  # the file it came from: cross-validation holds out whole files
    dense: np.ndarray  # (caller sentences, 2 * DIMENSIONS): embedding and context embedding
    hashed_rows: list[dict[int, float]]  # each caller sentence's hashed n-grams and clause features
    texts: list[str]
    labels: np.ndarray  # (caller sentences, flags): 1, 0 or UNKNOWN
    # The call as the live engine sees it after each caller turn: how many caller sentences so far,
    # their mean embedding, and the hashed n-grams of the caller's words so far. The last is the call.
    prefix_sentences: list[int]
    prefix_means: np.ndarray  # (prefixes, DIMENSIONS)
    prefix_hashed: list[dict[int, float]]
    rule_flags: frozenset[str] = frozenset()  # what the taxonomy's patterns raise in this call


def _overlaps(span: tuple[int, int], quotes: list[tuple[int, int]]) -> bool:
    start, end = span
    return any(
        min(end, q_end) - max(start, q_start) >= 0.5 * min(end - start, q_end - q_start) for q_start, q_end in quotes
    )


def featurise(call: LabelledCall, source: str, embedder: SentenceEmbedder, clauses: ClauseReader) -> CallFeatures:
    """The caller sentences that may raise a flag, featured as the engine features them live."""
    units: list[tuple[int, int, str]] = []  # (turn index, start offset, sentence)
    for t, turn in enumerate(call.turns):
        units += [(t, start, text) for start, text in sentences(turn.text)]
    vectors = embedder.embed([text for _, _, text in units])
    rows, texts, labels, caller_vectors, turn_of_sentence = [], [], [], [], []
    previous = np.zeros(DIMENSIONS, dtype=np.float32)
    for (t, start, text), vector in zip(units, vectors, strict=True):
        turn = call.turns[t]
        context, previous = previous, vector
        if not may_raise_flag(turn.leg, text):
            continue
        caller_vectors.append(vector)
        turn_of_sentence.append(t)
        rows.append(np.concatenate([vector, context]))
        texts.append(text)
        labels.append([_label(call, flag_id, turn.text, (start, start + len(text))) for flag_id in RISK_FLAG_IDS])
    hashed_rows = [learned.sentence_features(text, c) for text, c in zip(texts, clauses.read(texts), strict=True)]
    return CallFeatures(
        call,
        source,
        np.array(rows, dtype=np.float32).reshape(len(rows), 2 * DIMENSIONS),
        hashed_rows,
        texts,
        np.array(labels, dtype=np.float32).reshape(len(rows), len(RISK_FLAG_IDS)),
        *_prefixes(call, turn_of_sentence, caller_vectors),
    )


def _prefixes(
    call: LabelledCall, turn_of_sentence: list[int], caller_vectors: list[np.ndarray]
) -> tuple[list[int], np.ndarray, list[dict[int, float]]]:
    counts: dict[int, float] = {}
    ends, means, hashed = [], [], []
    running_sums = np.cumsum(np.array(caller_vectors, dtype=np.float32).reshape(-1, DIMENSIONS), axis=0)
    for t, turn in enumerate(call.turns):
        if turn.leg != "caller":
            continue
        learned.add_counts(counts, learned.ngram_counts(turn.text))
        n = bisect.bisect_right(turn_of_sentence, t)  # caller sentences said up to this turn
        ends.append(n)
        means.append(running_sums[n - 1] / n if n else np.zeros(DIMENSIONS, dtype=np.float32))
        hashed.append(learned.unit_length(counts))
    if not ends:  # a call with no caller turn: one empty prefix
        ends, means, hashed = [0], [np.zeros(DIMENSIONS, dtype=np.float32)], [{}]
    return ends, np.array(means, dtype=np.float32), hashed


def _label(call: LabelledCall, flag_id: str, turn_text: str, span: tuple[int, int]) -> float:
    if flag_id not in call.flags:
        return 0.0
    quotes = [(i, i + len(q)) for q in call.evidence.get(flag_id, []) if (i := turn_text.find(q)) >= 0]
    return 1.0 if _overlaps(span, quotes) else UNKNOWN


class Design:
    """A design matrix of dense columns followed by hashed n-gram columns, kept sparse: a sentence
    has a few hundred of the HASH_SIZE n-gram buckets, and dense storage would cost gigabytes."""

    def __init__(self, dense: np.ndarray, hashed_rows: Sequence[dict[int, float]]) -> None:
        self.dense = dense.astype(np.float32)
        self.rows = np.concatenate(
            [np.full(len(h), i, dtype=np.int64) for i, h in enumerate(hashed_rows)] or [np.zeros(0, np.int64)]
        )
        self.cols = np.concatenate(
            [np.fromiter(h.keys(), dtype=np.int64, count=len(h)) for h in hashed_rows] or [np.zeros(0, np.int64)]
        )
        self.vals = np.concatenate(
            [np.fromiter(h.values(), dtype=np.float32, count=len(h)) for h in hashed_rows] or [np.zeros(0, np.float32)]
        )
        self.n_rows = len(dense)
        self.n_cols = dense.shape[1] + learned.HASH_SIZE

    def dot(self, w: np.ndarray) -> np.ndarray:
        d = self.dense.shape[1]
        out = self.dense @ w[:d]
        sparse = self.vals[:, None] * w[d:][self.cols]
        for k in range(w.shape[1]):
            out[:, k] += np.bincount(self.rows, weights=sparse[:, k], minlength=self.n_rows)
        return out

    def tdot(self, g: np.ndarray) -> np.ndarray:
        d = self.dense.shape[1]
        out = np.empty((self.n_cols, g.shape[1]), dtype=np.float32)
        out[:d] = self.dense.T @ g
        spread = self.vals[:, None] * g[self.rows]
        for k in range(g.shape[1]):
            out[d:, k] = np.bincount(self.cols, weights=spread[:, k], minlength=learned.HASH_SIZE)
        return out


def fit_logistic(
    x: Design, y: np.ndarray, mask: np.ndarray, l2: float, steps: int, rate: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Independent sigmoid outputs; `mask` weights each (row, output), 0 leaves it out. Positives
    and negatives of each output weigh the same in total: positives are rare."""
    pos = ((y == 1) * mask).sum(axis=0)
    neg = ((y == 0) * mask).sum(axis=0)
    weight = mask * np.where(y == 1, 0.5 / np.maximum(pos, 1), 0.5 / np.maximum(neg, 1))
    target = (y == 1).astype(np.float32)
    return _adam(x, lambda logits: weight * (learned.sigmoid(logits) - target), y.shape[1], l2, steps, rate)


def fit_softmax(
    x: Design, classes: np.ndarray, n_classes: int, l2: float, steps: int, rate: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Classes weigh the same in total, whatever their share of the calls."""
    onehot = np.eye(n_classes, dtype=np.float32)[classes]
    row_weight = (1.0 / np.maximum(onehot.sum(axis=0), 1))[classes][:, None] / n_classes

    return _adam(x, lambda logits: row_weight * (learned.softmax(logits) - onehot), n_classes, l2, steps, rate)


def _adam(x: Design, gradient_of_logits, n_out: int, l2: float, steps: int, rate: float):
    w = np.zeros((x.n_cols, n_out), dtype=np.float32)
    b = np.zeros(n_out, dtype=np.float32)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        g = gradient_of_logits(x.dot(w) + b).astype(np.float32)
        g_w = x.tdot(g) + l2 * w
        g_b = g.sum(axis=0)
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w**2
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b**2
        correction1, correction2 = 1 - beta1**step, 1 - beta2**step
        w -= rate * (m_w / correction1) / (np.sqrt(v_w / correction2) + eps)
        b -= rate * (m_b / correction1) / (np.sqrt(v_b / correction2) + eps)
    return w, b


@dataclass(frozen=True)
class Hyper:
    """L2 penalties chosen by leave-one-set-out cross-validation (docs/insights.md): weaker
    penalties did better down to these values; 300 full-batch Adam steps."""

    flag_l2: float = 3e-4
    call_flag_l2: float = 3e-5
    category_l2: float = 3e-5
    steps: int = 300


def sentence_design(data: Sequence[CallFeatures]) -> Design:
    return Design(np.concatenate([d.dense for d in data]), [h for d in data for h in d.hashed_rows])


def train_sentence_flags(data: Sequence[CallFeatures], hyper: Hyper) -> tuple[np.ndarray, np.ndarray]:
    x = sentence_design(data)
    y = np.concatenate([d.labels for d in data])
    has_evidence = np.concatenate([np.full(len(d.texts), bool(d.call.evidence)) for d in data])
    first_mask = ((y != UNKNOWN) & (has_evidence[:, None] | (y == 0))).astype(np.float32)
    w, b = fit_logistic(x, y, first_mask, hyper.flag_l2, hyper.steps)
    # One round of multiple-instance learning: in a flagged call without evidence, the sentence the
    # first model finds likeliest becomes its positive.
    logits = x.dot(w) + b
    y = y.copy()
    row = 0
    for d in data:
        n = len(d.texts)
        if not d.call.evidence and n:
            for f, flag_id in enumerate(RISK_FLAG_IDS):
                if flag_id in d.call.flags:
                    y[row + int(np.argmax(logits[row : row + n, f])), f] = 1.0
        row += n
    return fit_logistic(x, y, (y != UNKNOWN).astype(np.float32), hyper.flag_l2, hyper.steps)


def sentence_probabilities(data: Sequence[CallFeatures], w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    probs = learned.sigmoid(sentence_design(data).dot(w) + b)
    bounds = np.cumsum([0] + [len(d.texts) for d in data])
    return [probs[bounds[i] : bounds[i + 1]] for i in range(len(data))]


def prefix_design(data: Sequence[CallFeatures]) -> Design:
    return Design(np.concatenate([d.prefix_means for d in data]), [h for d in data for h in d.prefix_hashed])


def call_flag_labels(data: Sequence[CallFeatures]) -> np.ndarray:
    return np.array([[flag_id in d.call.flags for flag_id in RISK_FLAG_IDS] for d in data], dtype=np.float32)


def prefix_labels(d: CallFeatures) -> np.ndarray:
    """(prefixes, flags): 1 once a sentence quoted as the flag's evidence has been said, 0 for calls
    without the flag; a flagged call before its evidence is left out, and so is every prefix but the
    last of a flagged call labelled without evidence. The whole call carries its labels."""
    out = np.zeros((len(d.prefix_sentences), len(RISK_FLAG_IDS)), dtype=np.float32)
    for f, flag_id in enumerate(RISK_FLAG_IDS):
        if flag_id not in d.call.flags:
            continue
        said = np.flatnonzero(d.labels[:, f] == 1)
        first = int(said[0]) + 1 if len(said) else None
        for p, n in enumerate(d.prefix_sentences):
            out[p, f] = 1.0 if first is not None and n >= first else UNKNOWN
        out[-1, f] = 1.0
    return out


def train_call_flags(data: Sequence[CallFeatures], hyper: Hyper) -> tuple[np.ndarray, np.ndarray]:
    """The call-so-far view of each flag, trained on every prefix the live engine scores."""
    y = np.concatenate([prefix_labels(d) for d in data])
    return fit_logistic(prefix_design(data), y, (y != UNKNOWN).astype(np.float32), hyper.call_flag_l2, hyper.steps)


def live_flag_scores(data: Sequence[CallFeatures], sentence_w, sentence_b, call_w, call_b) -> np.ndarray:
    """(calls, flags): the highest combined score over the prefixes of each call, as the live
    engine computes it after every segment (a raised flag stays raised)."""
    sentence_probs = sentence_probabilities(data, sentence_w, sentence_b)
    prefix_probs = learned.sigmoid(prefix_design(data).dot(call_w) + call_b)
    out = np.zeros((len(data), len(RISK_FLAG_IDS)), dtype=np.float32)
    row = 0
    for i, (d, probs) in enumerate(zip(data, sentence_probs, strict=True)):
        running = np.maximum.accumulate(probs, axis=0) if len(probs) else np.zeros((0, len(RISK_FLAG_IDS)))
        for p, n in enumerate(d.prefix_sentences):
            if n:
                out[i] = np.maximum(out[i], learned.FlagModel.combine(running[n - 1], prefix_probs[row + p]))
        row += len(d.prefix_sentences)
    return out


def category_design(data: Sequence[CallFeatures], flag_scores: np.ndarray) -> Design:
    dense = np.concatenate([np.stack([d.prefix_means[-1] for d in data]), flag_scores], axis=1)
    return Design(dense, [d.prefix_hashed[-1] for d in data])


def train_categories(
    data: Sequence[CallFeatures], flag_scores: np.ndarray, category_ids: Sequence[str], hyper: Hyper
) -> tuple[np.ndarray, np.ndarray]:
    """`flag_scores` must be out-of-fold: scores of models that never saw the call, as at run time."""
    classes = np.array([list(category_ids).index(d.call.category) for d in data])
    design = category_design(data, flag_scores)
    return fit_softmax(design, classes, len(category_ids), hyper.category_l2, hyper.steps)


def category_probabilities(
    data: Sequence[CallFeatures], flag_scores: np.ndarray, w: np.ndarray, b: np.ndarray
) -> np.ndarray:
    return learned.softmax(category_design(data, flag_scores).dot(w) + b)


@dataclass
class CrossValidation:
    """Out-of-fold scores for every training call, each from models that never saw its set."""

    sources: list[str] = field(default_factory=list)
    flag_scores: list[np.ndarray] = field(default_factory=list)  # combined, (flags,) per call
    category_probs: list[np.ndarray] = field(default_factory=list)

    def raised(self, data: Sequence[CallFeatures], threshold: float) -> np.ndarray:
        rules = np.array([[f in d.rule_flags for f in RISK_FLAG_IDS] for d in data])
        return (np.stack(self.flag_scores) >= threshold) | rules


def cross_validate(data: Sequence[CallFeatures], category_ids: Sequence[str], hyper: Hyper) -> CrossValidation:
    """Leave one set out; `data` must be grouped by set, and the result is in the same order. The
    category scorer of each fold learns from the other sets' out-of-fold flag scores."""
    cv = CrossValidation()
    sources = list(dict.fromkeys(d.source for d in data))
    for held in sources:
        train = [d for d in data if d.source != held]
        test = [d for d in data if d.source == held]
        sw, sb = train_sentence_flags(train, hyper)
        cw, cb = train_call_flags(train, hyper)
        cv.sources += [held] * len(test)
        cv.flag_scores += list(live_flag_scores(test, sw, sb, cw, cb))
    scores = np.stack(cv.flag_scores)
    sources_array = np.array(cv.sources)
    for held in sources:
        train_rows, test_rows = sources_array != held, sources_array == held
        train = [d for d, keep in zip(data, train_rows, strict=True) if keep]
        test = [d for d, keep in zip(data, test_rows, strict=True) if keep]
        kw, kb = train_categories(train, scores[train_rows], category_ids, hyper)
        cv.category_probs += list(category_probabilities(test, scores[test_rows], kw, kb))
    return cv


def threshold_for_recall(data: Sequence[CallFeatures], cv: CrossValidation, target: float) -> float:
    """The highest threshold whose out-of-fold flag recall, patterns included, reaches `target`."""
    labels = call_flag_labels(data).astype(bool)
    for threshold in np.arange(0.95, 0.05, -0.01):
        raised = cv.raised(data, float(threshold))
        if (raised & labels).sum() >= target * labels.sum():
            return round(float(threshold), 2)
    return 0.05


def fit(
    data: Sequence[CallFeatures],
    cv: CrossValidation,
    category_ids: Sequence[str],
    hyper: Hyper,
    threshold: float,
    trained_on: str,
) -> learned.InsightsModel:
    sw, sb = train_sentence_flags(data, hyper)
    cw, cb = train_call_flags(data, hyper)
    kw, kb = train_categories(data, np.stack(cv.flag_scores), category_ids, hyper)
    flags = learned.FlagModel(tuple(RISK_FLAG_IDS), sw, sb, cw, cb, threshold)
    return learned.InsightsModel(flags, learned.CategoryModel(tuple(category_ids), kw, kb), trained_on)
