"""Insights for one call, computed incrementally: each final segment is analysed once, when it
arrives; an update only aggregates what is cached. Runs on the NLP executor's thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import structlog

from callstream import models
from callstream.events import CategoryScore, EntityMention, RiskFlag
from callstream.nlp import classify, taxonomy
from callstream.nlp.embedder import DIMENSIONS, SentenceEmbedder
from callstream.nlp.entities import ASKS_AGE, Entity, EntityExtractor
from callstream.nlp.risk import RiskDetector, RiskHit
from callstream.nlp.summary import summarise
from callstream.nlp.text import is_question_to_caller, sentences

log = structlog.get_logger(__name__)

MASKABLE = ("PERSON", "PHONE", "PLACE")


@dataclass(frozen=True, slots=True)
class TranscriptSegment:
    start_s: float
    end_s: float
    leg: str  # "caller", "agent"
    text: str
    language: str
    translation: str | None = None


@dataclass(slots=True)
class _Sentence:
    text: str  # English when a translation exists, else as said
    at_s: float
    leg: str
    vector: np.ndarray
    flagged: bool
    entities: int
    keywords: frozenset[tuple[int, int]]  # (category index, keyword index) found in it


@dataclass(frozen=True, slots=True)
class Snapshot:
    language: str | None
    categories: list[CategoryScore]
    subcategory: str | None
    priority: int
    risk_flags: list[RiskFlag]
    entities: list[EntityMention]
    summary: str
    translation: str | None
    segments: int


@dataclass(slots=True)
class CallText:
    """Everything the NLP stage keeps for one call; only ever touched by the NLP thread."""

    sentences: list[_Sentence] = field(default_factory=list)
    flags: dict[str, RiskFlag] = field(default_factory=dict)
    entities: list[EntityMention] = field(default_factory=list)
    language_seconds: dict[str, float] = field(default_factory=dict)
    translations: list[str] = field(default_factory=list)
    last_sentence: dict[str, str] = field(default_factory=dict)  # leg -> its latest sentence (context)
    segments: int = 0


class InsightsEngine:
    def __init__(
        self,
        tax: taxonomy.Taxonomy,
        embedder: SentenceEmbedder,
        extractor: EntityExtractor,
        mask_labels: frozenset[str] = frozenset(),
    ) -> None:
        self.taxonomy = tax
        self._embedder = embedder
        self._extractor = extractor
        self._mask_labels = mask_labels
        self._prototypes = [self._prototype(c) for c in tax.categories]
        self._risk = RiskDetector(tax.flags, {f.id: embedder.embed(f.examples) for f in tax.flags})
        self._flag_priority = {f.id: f.priority for f in tax.flags}

    @classmethod
    def load(cls, taxonomy_path: Path | None = None, mask_labels: frozenset[str] = frozenset()) -> InsightsEngine:
        import spacy

        models.spacy_model_dir()  # a clear install hint when the package is missing
        nlp = spacy.load(models.SPACY_MODEL, exclude=["lemmatizer"])
        return cls(taxonomy.load(taxonomy_path), SentenceEmbedder(), EntityExtractor(nlp), mask_labels)

    def _prototype(self, category: taxonomy.Category) -> classify.CategoryPrototypes:
        texts = [category.description, *category.examples]
        for sub in category.sub:
            texts += [sub.description, *sub.examples]
        subs = {sub.id: self._embedder.embed([sub.description, *sub.examples]) for sub in category.sub}
        return classify.CategoryPrototypes(category, self._embedder.embed([t for t in texts if t]), subs)

    def add_segment(self, call: CallText, segment: TranscriptSegment) -> list[RiskFlag]:
        """Analyse one final segment; returns the risk flags it raised for the first time."""
        call.segments += 1
        call.language_seconds[segment.language] = (
            call.language_seconds.get(segment.language, 0.0) + segment.end_s - segment.start_s
        )
        asked_age = bool(ASKS_AGE.search(call.last_sentence.get("agent", ""))) and segment.leg != "agent"
        entities = self._extractor.extract(segment.text, answers_age_question=asked_age)
        call.entities += [self._mention(e, segment) for e in entities]
        units = [s for _, s in sentences(segment.text)]
        if segment.translation:
            call.translations.append(segment.translation)
            # Patterns also read the original words (Swahili keywords); embeddings read the English.
            units += [s for _, s in sentences(segment.translation)]
        if not units:
            return []
        vectors = self._embedder.embed(units)
        new_flags = []
        for text, vector in zip(units, vectors, strict=True):
            before = call.last_sentence.get(segment.leg, "")
            call.last_sentence[segment.leg] = text
            may_raise = self._may_raise(segment.leg, text)
            hits = self._risk.hits(text, vector, segment.start_s, before) if may_raise else []
            for hit in hits:
                if self._record(call, hit):
                    new_flags.append(call.flags[hit.flag_id])
            keywords = classify.keywords_in(self.taxonomy.categories, text)
            call.sentences.append(
                _Sentence(text, segment.start_s, segment.leg, vector, bool(hits), len(entities), keywords)
            )
        return new_flags

    def _may_raise(self, leg: str, sentence: str) -> bool:
        return leg != "agent" and not is_question_to_caller(sentence)

    def _record(self, call: CallText, hit: RiskHit) -> bool:
        known = call.flags.get(hit.flag_id)
        flag = RiskFlag(id=hit.flag_id, score=hit.score, evidence=self.mask(hit.evidence), at=hit.at_s)
        if known is None:
            call.flags[hit.flag_id] = flag
            return True
        if hit.score > known.score:
            # A new struct, not a mutation: earlier events still hold the old one. The first
            # evidence and time are kept: that is when the flag was raised.
            call.flags[hit.flag_id] = msgspec.structs.replace(known, score=hit.score)
        return False

    def _mention(self, entity: Entity, segment: TranscriptSegment) -> EntityMention:
        text = f"[{entity.label}]" if entity.label in self._mask_labels else entity.text
        return EntityMention(label=entity.label, text=text, start=segment.start_s, end=segment.end_s)

    def analyse(self, segments: list[TranscriptSegment]) -> Snapshot:
        """A whole transcript at once, in one go (offline use; the server interleaves segments instead)."""
        call = CallText()
        for segment in segments:
            self.add_segment(call, segment)
        return self.snapshot(call)

    def snapshot(self, call: CallText) -> Snapshot:
        caller = [s for s in call.sentences if s.leg != "agent"] or call.sentences
        vectors = np.stack([s.vector for s in caller]) if caller else np.zeros((0, DIMENSIONS), dtype=np.float32)
        texts = [s.text for s in caller]
        flag_scores = {flag_id: flag.score for flag_id, flag in call.flags.items()}
        keywords = classify.keyword_counts([s.keywords for s in caller], len(self._prototypes))
        ranked = classify.classify(self._prototypes, vectors, keywords, flag_scores)
        best = ranked[0][0]
        proto = next(p for p in self._prototypes if p.category is best)
        priorities = [best.priority, *(self._flag_priority.get(f, 2) for f in call.flags)]
        seconds = call.language_seconds
        summary = summarise(texts, vectors, [s.flagged for s in caller], [s.entities for s in caller])
        return Snapshot(
            language=max(seconds, key=seconds.__getitem__) if seconds else None,
            categories=[CategoryScore(id=c.id, label=c.label, score=round(p, 3)) for c, p in ranked],
            subcategory=classify.subcategory(proto, vectors, flag_scores),
            priority=min(priorities),
            risk_flags=sorted(call.flags.values(), key=lambda f: f.at),
            entities=list(call.entities),
            summary=self.mask(summary),
            translation=self.mask(" ".join(call.translations)) if call.translations else None,
            segments=call.segments,
        )

    @property
    def masking(self) -> bool:
        return bool(self._mask_labels)

    def mask(self, text: str) -> str:
        """Replace names, phone numbers and places with their label when masking is configured."""
        if not self._mask_labels or not text:
            return text
        out = text
        for entity in sorted(self._extractor.extract(text), key=lambda e: -e.start_char):
            if entity.label in self._mask_labels:
                out = out[: entity.start_char] + f"[{entity.label}]" + out[entity.end_char :]
        return out
