"""Risk flags: patterns for recall, sentence embeddings for what patterns do not foresee."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callstream.nlp.taxonomy import CallerContext, RiskFlagRule

PATTERN_SCORE = 0.9  # a pattern match is explicit; the score ranks it above embedding-only hits


@dataclass(frozen=True, slots=True)
class RiskHit:
    flag_id: str
    score: float
    evidence: str
    at_s: float  # call clock, start of the segment


class RiskDetector:
    def __init__(
        self,
        rules: list[RiskFlagRule],
        example_vectors: dict[str, np.ndarray],
        contexts: list[CallerContext] | None = None,
    ) -> None:
        self._rules = rules
        self._examples = example_vectors  # flag id -> unit vectors of its examples
        self._contexts = contexts or []

    def hits(
        self, sentence: str, vector: np.ndarray, at_s: float, before: str = "", contexts: frozenset[str] = frozenset()
    ) -> list[RiskHit]:
        """Flags this sentence raises; `before` is the same speaker's previous sentence, `contexts`
        the caller contexts that hold (update_contexts)."""
        found = []
        window = f"{before} {sentence}"
        vetoed: set[str] | None = None  # the contexts' vetoes, read only once a rule would raise
        for rule in self._rules:
            score = self._score(rule, sentence, window, vector)
            # Excludes are long guarded expressions, and most sentences match no pattern or
            # example of a rule: they are tried only for a rule that would raise.
            if score <= 0 or any(p.search(sentence) for p in rule.compiled_excludes):
                continue
            if vetoed is None:
                vetoed = self._vetoed(sentence, window, contexts)
            if rule.id not in vetoed:
                found.append(RiskHit(rule.id, round(score, 3), sentence, at_s))
        return found

    def _score(self, rule: RiskFlagRule, sentence: str, window: str, vector: np.ndarray) -> float:
        """PATTERN_SCORE for a pattern or combination, the similarity for an example close enough, else 0."""
        score = 0.0
        if any(p.search(sentence) for p in rule.compiled_patterns) or any(
            all(p.search(window) for p in group) and any(p.search(sentence) for p in group)
            for group in rule.compiled_combinations
        ):
            score = PATTERN_SCORE
        examples = self._examples.get(rule.id)
        if examples is not None and len(examples):
            similarity = float(np.max(examples @ vector))
            if similarity >= rule.similarity:
                score = max(score, min(1.0, similarity))
        return score

    def _vetoed(self, sentence: str, window: str, held: frozenset[str]) -> set[str]:
        """The flags the holding caller contexts veto for this sentence. Its pattern must match the
        sentence alone and with the sentence before: "He raped me." after "My daughter told me
        everything." may be the daughter's words, not the caller's own story."""
        vetoed: set[str] = set()
        for context in self._contexts:
            if context.id in held and any(
                p.search(sentence) and p.search(window) for p in context.compiled_vetoed_sentences
            ):
                vetoed.update(context.vetoes)
        return vetoed


def update_contexts(contexts: list[CallerContext], held: dict[str, bool], sentence: str) -> None:
    """Fold one caller sentence into `held` (context id -> whether it holds). A context ruled out
    stays ruled out: a caller who said "I'm 15" is a child even after "I'm 19"."""
    for context in contexts:
        if held.get(context.id) is False:
            continue
        if any(p.search(sentence) for p in context.compiled_unless):
            held[context.id] = False
        elif any(p.search(sentence) for p in context.compiled_said):
            held[context.id] = True


def holding(held: dict[str, bool]) -> frozenset[str]:
    return frozenset(context for context, holds in held.items() if holds)
