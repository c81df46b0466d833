"""Insights for one call, computed incrementally: each final segment is analysed once, when it
arrives; an update only aggregates what is cached. Runs on the NLP executor's thread."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np
import structlog

from callstream import models
from callstream.events import CategoryScore, EntityMention, RiskFlag
from callstream.nlp import classify, learned, taxonomy
from callstream.nlp.clauses import ClauseReader
from callstream.nlp.embedder import DIMENSIONS, SentenceEmbedder
from callstream.nlp.entities import ASKS_AGE, ASKS_NAME, Entity, EntityExtractor
from callstream.nlp.risk import RiskDetector, RiskHit, holding, update_contexts
from callstream.nlp.summary import summarise
from callstream.nlp.text import may_raise_flag, sentences

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
    revision: int  # CallText.revision it was taken at


@dataclass(slots=True)
class CallText:
    """Everything the NLP stage keeps for one call; only ever touched by the NLP thread."""

    sentences: list[_Sentence] = field(default_factory=list)
    flags: dict[str, RiskFlag] = field(default_factory=dict)
    entities: list[EntityMention] = field(default_factory=list)
    language_seconds: dict[str, float] = field(default_factory=dict)
    translations: list[str] = field(default_factory=list)
    last_sentence: dict[str, str] = field(default_factory=dict)  # leg -> its latest sentence (context)
    caller_contexts: dict[str, bool] = field(default_factory=dict)  # taxonomy caller context -> holds
    previous_vector: np.ndarray | None = None  # the call's latest sentence, either leg (learned context)
    latest_start_s: dict[str, float] = field(default_factory=dict)  # leg -> start of its latest segment
    learned_scores: learned.CallScores | None = None
    segments: int = 0
    revision: int = 0  # segments and late translations analysed: what an update has to catch up with


class InsightsEngine:
    def __init__(
        self,
        tax: taxonomy.Taxonomy,
        embedder: SentenceEmbedder,
        extractor: EntityExtractor,
        clauses: ClauseReader,
        mask_labels: frozenset[str] = frozenset(),
        model: learned.InsightsModel | None = None,
    ) -> None:
        self.taxonomy = tax
        self._embedder = embedder
        self._extractor = extractor
        self._clauses = clauses
        self._mask_labels = mask_labels
        self._prototypes = [self._prototype(c) for c in tax.categories]
        self._risk = RiskDetector(tax.flags, {f.id: embedder.embed(f.examples) for f in tax.flags}, tax.caller_contexts)
        self._flag_priority = {f.id: f.priority for f in tax.flags}
        self._flag_model, self._category_model = _usable_parts(model, tax)

    @classmethod
    def load(
        cls,
        taxonomy_path: Path | None = None,
        mask_labels: frozenset[str] = frozenset(),
        model_path: Path | None = learned.MODEL_PATH,
        flag_threshold: float | None = None,
    ) -> InsightsEngine:
        """`model_path` None: patterns and embeddings only, as the learned scorers are trained against.
        `flag_threshold` replaces the learned flag scorers' trained threshold."""
        import spacy

        models.spacy_model_dir()  # a clear install hint when the package is missing
        nlp = spacy.load(models.SPACY_MODEL, exclude=["lemmatizer"])
        model = learned.load(model_path) if model_path is not None else None
        if model is not None and flag_threshold is not None:
            model = dataclasses.replace(model, flags=dataclasses.replace(model.flags, threshold=flag_threshold))
        return cls(
            taxonomy.load(taxonomy_path),
            SentenceEmbedder(),
            EntityExtractor(nlp),
            ClauseReader(nlp),
            mask_labels,
            model,
        )

    @property
    def flag_threshold(self) -> float | None:
        """The learned flag scorers' threshold; None when only patterns raise flags."""
        return self._flag_model.threshold if self._flag_model is not None else None

    @property
    def clauses(self) -> ClauseReader:
        """The parser the flag scorer reads sentences with; training reads its calls with it too."""
        return self._clauses

    def _prototype(self, category: taxonomy.Category) -> classify.CategoryPrototypes:
        texts = [category.description, *category.examples]
        for sub in category.sub:
            texts += [sub.description, *sub.examples]
        subs = {sub.id: self._embedder.embed([sub.description, *sub.examples]) for sub in category.sub}
        return classify.CategoryPrototypes(category, self._embedder.embed([t for t in texts if t]), subs)

    def add_segment(self, call: CallText, segment: TranscriptSegment) -> list[RiskFlag]:
        """Analyse one final segment, with its translation when it has one; returns the risk flags
        it raised for the first time."""
        call.segments += 1
        call.revision += 1
        call.language_seconds[segment.language] = (
            call.language_seconds.get(segment.language, 0.0) + segment.end_s - segment.start_s
        )
        asked = call.last_sentence.get("agent", "") if segment.leg != "agent" else ""
        entities = self._extractor.extract(
            segment.text,
            answers_age_question=bool(ASKS_AGE.search(asked)),
            answers_name_question=bool(ASKS_NAME.search(asked)),
        )
        call.entities += [self._mention(e, segment) for e in entities]
        call.latest_start_s[segment.leg] = max(segment.start_s, call.latest_start_s.get(segment.leg, segment.start_s))
        said = [segment.text]
        if segment.translation:
            call.translations.append(segment.translation)
            # Patterns also read the original words (Swahili keywords); embeddings read the English.
            said.append(segment.translation)
        return self._analyse_words(call, segment, said, len(entities))

    def add_translation(self, call: CallText, segment: TranscriptSegment, translation: str) -> list[RiskFlag]:
        """The English of a segment already analysed as said (`segment.translation` None), once the
        recogniser has it: the live path analyses the original words at once, so that a pattern in
        them (a Swahili one) alerts without waiting for the translation."""
        call.revision += 1
        call.translations.append(translation)
        entities = sum(1 for m in call.entities if m.start == segment.start_s and m.end == segment.end_s)
        # Later segments may have been analysed meanwhile: the translation is read beside its own
        # words, and the call's latest sentence stays the latest one said.
        own = [s for _, s in sentences(segment.text)]
        latest = segment.start_s >= max(call.latest_start_s.values(), default=segment.start_s)
        latest_of_leg = segment.start_s >= call.latest_start_s.get(segment.leg, segment.start_s)
        before = own[-1] if own else ""
        return self._analyse_words(call, segment, [translation], entities, before, latest, latest_of_leg)

    def _analyse_words(
        self,
        call: CallText,
        segment: TranscriptSegment,
        said: list[str],
        entities: int,
        before: str | None = None,
        latest: bool = True,
        latest_of_leg: bool = True,
    ) -> list[RiskFlag]:
        """`before`: the sentence the first one follows (default: the leg's latest); `latest` and
        `latest_of_leg`: whether these words are the newest of the call and of their leg, which
        decides whether they become the context of what is analysed next."""
        units = [s for text in said for _, s in sentences(text)]
        if not units:
            return []
        vectors = self._embedder.embed(units)
        scores = self._learned_scores(call)
        if scores is not None and segment.leg != "agent":
            for text in said:
                scores.add_words(text)
        new_flags = []
        if before is None:
            before = call.last_sentence.get(segment.leg, "")
        for text, vector in zip(units, vectors, strict=True):
            if latest_of_leg:
                call.last_sentence[segment.leg] = text
            context = call.previous_vector if call.previous_vector is not None else np.zeros_like(vector)
            if latest:
                call.previous_vector = vector
            hits = []
            if may_raise_flag(segment.leg, text):
                update_contexts(self.taxonomy.caller_contexts, call.caller_contexts, text)
                hits = self._risk.hits(text, vector, segment.start_s, before, holding(call.caller_contexts))
                if scores is not None:  # parsed only here: agent lines and questions are never scored
                    clauses = self._clauses.read_one(text)
                    scores.add_sentence(self._flag_model, text, clauses, vector, context, segment.start_s)
            new_flags += [call.flags[hit.flag_id] for hit in hits if self._record(call, hit)]
            keywords = classify.keywords_in(self.taxonomy.categories, text)
            call.sentences.append(_Sentence(text, segment.start_s, segment.leg, vector, bool(hits), entities, keywords))
            before = text
        if segment.leg != "agent":  # only the caller's words move the learned scores
            for hit in self._learned_hits(call):
                if self._record(call, hit):
                    new_flags.append(call.flags[hit.flag_id])
                    _mark_flagged(call.sentences, hit)
        return new_flags

    def _learned_scores(self, call: CallText) -> learned.CallScores | None:
        if self._flag_model is None:
            return None
        if call.learned_scores is None:
            call.learned_scores = learned.CallScores.empty(len(self._flag_model.flag_ids))
        return call.learned_scores

    def _learned_hits(self, call: CallText) -> list[RiskHit]:
        """Flags whose learned score for the call so far reaches the threshold; the evidence is the
        sentence that scored highest for the flag."""
        model, scores = self._flag_model, call.learned_scores
        if model is None or scores is None:
            return []
        hits = []
        for flag_id, score, best in zip(model.flag_ids, scores.flag_scores(model), scores.best_sentence, strict=True):
            if score >= model.threshold and best is not None and flag_id in self._flag_priority:
                hits.append(RiskHit(flag_id, round(float(score), 3), best[0], best[1]))
        return hits

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
        # In the order said: a late translation was appended after segments that followed it.
        caller = sorted((s for s in call.sentences if s.leg != "agent"), key=lambda s: s.at_s) or call.sentences
        vectors = np.stack([s.vector for s in caller]) if caller else np.zeros((0, DIMENSIONS), dtype=np.float32)
        texts = [s.text for s in caller]
        flag_scores = {flag_id: flag.score for flag_id, flag in call.flags.items()}
        ranked = self._rank_categories(call, vectors, [s.keywords for s in caller], flag_scores)
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
            revision=call.revision,
        )

    def _rank_categories(
        self,
        call: CallText,
        vectors: np.ndarray,
        keywords: list[frozenset[tuple[int, int]]],
        flag_scores: dict[str, float],
    ) -> list[tuple[taxonomy.Category, float]]:
        model = self._category_model
        scores = call.learned_scores
        if model is None or self._flag_model is None or scores is None or not scores.sentences:
            counts = classify.keyword_counts(keywords, len(self._prototypes))
            return classify.classify(self._prototypes, vectors, counts, flag_scores)
        # The category sees every flag the call has raised, a user's pattern included.
        learned_flags = scores.flag_scores(self._flag_model)
        for k, flag_id in enumerate(self._flag_model.flag_ids):
            if flag_id in call.flags:
                learned_flags[k] = max(learned_flags[k], call.flags[flag_id].score)
        probs = model.probabilities(scores.mean_vector(), learned_flags, learned.unit_length(scores.ngrams))
        by_id = {c.id: c for c in self.taxonomy.categories}
        return [(by_id[model.category_ids[i]], float(probs[i])) for i in np.argsort(-probs)]

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


def _mark_flagged(sentences: list[_Sentence], hit: RiskHit) -> None:
    """The sentence a learned flag cites belongs in the summary, as a pattern's sentence does."""
    for sentence in reversed(sentences):
        if sentence.text == hit.evidence and sentence.at_s == hit.at_s:
            sentence.flagged = True
            return


def _usable_parts(
    model: learned.InsightsModel | None, tax: taxonomy.Taxonomy
) -> tuple[learned.FlagModel | None, learned.CategoryModel | None]:
    """The learned scorers fit the taxonomy they were trained for. An edited taxonomy keeps the flag
    scorer for the flags it still has; with other category ids, categories fall back to embeddings."""
    if model is None:
        return None, None
    category_model = model.categories
    if set(category_model.category_ids) != {c.id for c in tax.categories}:
        log.warning("nlp.learned_categories_unused", reason="taxonomy categories differ from the trained ones")
        category_model = None
    return model.flags, category_model
