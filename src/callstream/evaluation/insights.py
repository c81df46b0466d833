"""Scoring live insights against labelled helpline transcripts (tests/data/insights_*.jsonl)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec

from callstream.nlp.engine import InsightsEngine, Snapshot, TranscriptSegment
from callstream.nlp.taxonomy import RISK_FLAG_IDS, Taxonomy

DATA_DIR = Path(__file__).resolve().parents[3] / "tests" / "data"
SECONDS_PER_TURN = 6.0


class Turn(msgspec.Struct):
    leg: str
    text: str


class LabelledEntity(msgspec.Struct):
    label: str
    text: str


class LabelledCall(msgspec.Struct, kw_only=True):
    id: str
    caller_role: str
    languages: list[str]
    turns: list[Turn]
    category: str
    subcategory: str | None
    priority: int
    flags: list[str]
    entities: list[LabelledEntity]
    # For each flag, the caller's words that state it (verbatim parts of caller turns). Only the
    # training sets carry it; it lets a sentence classifier learn where in a call a flag is said.
    evidence: dict[str, list[str]] = {}


def load_calls(path: Path) -> list[LabelledCall]:
    decoder = msgspec.json.Decoder(LabelledCall)
    return [decoder.decode(line) for line in path.read_text().splitlines() if line.strip()]


ENTITY_LABELS = ("PERSON", "AGE", "PLACE", "PHONE", "DATE", "SCHOOL", "ORG")
CALLER_ROLES = ("child", "parent", "relative", "neighbour", "teacher", "community_worker", "adult_survivor", "other")


class Labels(Protocol):
    """What a labelled call and a second annotation of one (evaluation/agreement.py) both carry."""

    category: str
    subcategory: str | None
    priority: int
    flags: list[str]
    evidence: dict[str, list[str]]


def check_labels(labels: Labels, call: LabelledCall, taxonomy: Taxonomy) -> list[str]:
    """What is wrong with the labels of `call`: unknown ids, or evidence that is not the caller's words."""
    problems = []
    category = taxonomy.category_by_id(labels.category)
    if category is None:
        problems.append(f"unknown category {labels.category!r}")
    elif labels.subcategory is not None and labels.subcategory not in {s.id for s in category.sub}:
        problems.append(f"subcategory {labels.subcategory!r} is not under {labels.category!r}")
    if labels.priority not in (1, 2, 3):
        problems.append(f"priority {labels.priority} is not 1, 2 or 3")
    problems += [f"unknown flag {f!r}" for f in labels.flags if f not in RISK_FLAG_IDS]
    caller_text = " ".join(t.text for t in call.turns if t.leg == "caller")
    for flag_id, quotes in labels.evidence.items():
        if flag_id not in labels.flags:
            problems.append(f"evidence for {flag_id!r}, which is not in flags")
        problems += [f"{flag_id} evidence {q!r} is not in a caller turn" for q in quotes if q not in caller_text]
    return problems


def check_call(call: LabelledCall, taxonomy: Taxonomy) -> list[str]:
    """What is wrong with one labelled call: unknown ids, or labels whose words are not in the call."""
    problems = check_labels(call, call, taxonomy)
    if call.caller_role not in CALLER_ROLES:
        problems.append(f"caller_role {call.caller_role!r} is not one of {CALLER_ROLES}")
    if not call.turns or any(t.leg not in ("agent", "caller") for t in call.turns):
        problems.append("turns must be non-empty, each with leg 'agent' or 'caller'")
    text = " ".join(t.text for t in call.turns)
    for entity in call.entities:
        if entity.label not in ENTITY_LABELS:
            problems.append(f"entity label {entity.label!r} is not one of {ENTITY_LABELS}")
        if entity.text not in text:
            problems.append(f"entity {entity.label} {entity.text!r} is not in the turns")
    return problems


def analyse(engine: InsightsEngine, call: LabelledCall) -> Snapshot:
    """Feed the turns as final segments, one every few seconds, as the live path would."""
    segments = []
    for i, turn in enumerate(call.turns):
        start = i * SECONDS_PER_TURN
        segments.append(TranscriptSegment(start, start + SECONDS_PER_TURN - 1, turn.leg, turn.text, call.languages[0]))
    return engine.analyse(segments)


def normalise_entity(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"[^\w\s'+-]", " ", text)
    text = re.sub(r"^(the|a|an)\s+", "", text.strip())
    return " ".join(text.split())


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, expected: bool, got: bool) -> None:
        self.tp += expected and got
        self.fp += got and not expected
        self.fn += expected and not got

    @staticmethod
    def total(all_counts: Iterable[Counts]) -> Counts:
        total = Counts()
        for c in all_counts:
            total.tp, total.fp, total.fn = total.tp + c.tp, total.fp + c.fp, total.fn + c.fn
        return total

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Report:
    calls: int = 0
    category_correct: int = 0
    priority_correct: int = 0
    flags: dict[str, Counts] = field(default_factory=lambda: {f: Counts() for f in RISK_FLAG_IDS})
    categories: dict[str, Counts] = field(default_factory=dict)
    entities: dict[str, Counts] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def category_accuracy(self) -> float:
        return self.category_correct / self.calls if self.calls else 0.0

    @property
    def priority_accuracy(self) -> float:
        return self.priority_correct / self.calls if self.calls else 0.0

    def flags_total(self) -> Counts:
        return Counts.total(self.flags.values())

    def add(self, call: LabelledCall, snapshot: Snapshot) -> None:
        self.calls += 1
        predicted = snapshot.categories[0].id
        self.category_correct += predicted == call.category
        self.priority_correct += snapshot.priority == call.priority
        for category in {predicted, call.category}:
            counts = self.categories.setdefault(category, Counts())
            if predicted == call.category:
                counts.tp += 1
            elif category == predicted:
                counts.fp += 1
            else:
                counts.fn += 1
        if predicted != call.category:
            self.errors.append(f"{call.id}: category {predicted} (expected {call.category})")
        raised = {f.id for f in snapshot.risk_flags}
        for flag_id in RISK_FLAG_IDS:
            expected, got = flag_id in call.flags, flag_id in raised
            self.flags[flag_id].add(expected, got)
            if expected != got:
                evidence = next((f.evidence for f in snapshot.risk_flags if f.id == flag_id), "")
                kind = "missed" if expected else f"false ({evidence!r})"
                self.errors.append(f"{call.id}: flag {flag_id} {kind}")
        self._add_entities(call, snapshot)

    def _add_entities(self, call: LabelledCall, snapshot: Snapshot) -> None:
        labels = {e.label for e in call.entities} | {e.label for e in snapshot.entities}
        for label in labels:
            expected = Counter(normalise_entity(e.text) for e in call.entities if e.label == label)
            got = Counter(normalise_entity(e.text) for e in snapshot.entities if e.label == label)
            counts = self.entities.setdefault(label, Counts())
            matched = sum((expected & got).values())
            counts.tp += matched
            counts.fp += sum(got.values()) - matched
            counts.fn += sum(expected.values()) - matched
            for text in (expected - got).elements():
                self.errors.append(f"{call.id}: entity {label} missed {text!r}")
            for text in (got - expected).elements():
                self.errors.append(f"{call.id}: entity {label} extra {text!r}")

    def markdown(self) -> str:
        lines = [
            f"Calls: {self.calls}. Category top-1 accuracy: **{self.category_accuracy:.3f}**. "
            f"Priority accuracy: {self.priority_accuracy:.3f}.",
            "",
            "| risk flag | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for name, c in [*self.flags.items(), ("**all flags**", self.flags_total())]:
            lines.append(f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.tp + c.fn} |")
        lines += ["", "| category | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for name, c in sorted(self.categories.items()):
            lines.append(f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.tp + c.fn} |")
        lines += ["", "| entity | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for name, c in sorted(self.entities.items()):
            lines.append(f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.tp + c.fn} |")
        return "\n".join(lines)


def evaluate(engine: InsightsEngine, calls: list[LabelledCall]) -> Report:
    report = Report()
    for call in calls:
        report.add(call, analyse(engine, call))
    return report
