"""How far two annotators of the same calls agree, and how the engine does against each of them.

A second annotator labels a held-out set's calls again, blind to the first labels (the turns only,
and docs/labelling.md). Where the two agree, a label is as sure as these sets can make it; where
they do not, no scorer can be right by both. The second labels live in
tests/data/second_annotator/, one line per call, in the first set's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from callstream.evaluation.insights import Counts, LabelledCall
from callstream.nlp.taxonomy import RISK_FLAG_IDS, Taxonomy

SECOND_DIR = Path(__file__).resolve().parents[3] / "tests" / "data" / "second_annotator"


class SecondLabels(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    category: str
    subcategory: str | None
    priority: int
    flags: list[str]
    evidence: dict[str, list[str]] = {}
    doubtful: list[str] = []  # flags the annotator hesitated over, raised or not


def load_second(path: Path) -> list[SecondLabels]:
    decoder = msgspec.json.Decoder(SecondLabels)
    return [decoder.decode(line) for line in path.read_text().splitlines() if line.strip()]


def check_second(first: list[LabelledCall], second: list[SecondLabels], taxonomy: Taxonomy) -> list[str]:
    """What is wrong with a second annotation: other calls than the first set's, unknown ids,
    evidence that is not the caller's words."""
    if [c.id for c in first] != [s.id for s in second]:
        return ["the second annotation does not list the first set's calls in the same order"]
    problems = []
    for call, labels in zip(first, second, strict=True):
        category = taxonomy.category_by_id(labels.category)
        if category is None:
            problems.append(f"{labels.id}: unknown category {labels.category!r}")
        elif labels.subcategory is not None and labels.subcategory not in {s.id for s in category.sub}:
            problems.append(f"{labels.id}: subcategory {labels.subcategory!r} is not under {labels.category!r}")
        if labels.priority not in (1, 2, 3):
            problems.append(f"{labels.id}: priority {labels.priority} is not 1, 2 or 3")
        unknown = [f for f in [*labels.flags, *labels.doubtful, *labels.evidence] if f not in RISK_FLAG_IDS]
        problems += [f"{labels.id}: unknown flag {f!r}" for f in unknown]
        caller_text = " ".join(t.text for t in call.turns if t.leg == "caller")
        for flag_id, quotes in labels.evidence.items():
            problems += [
                f"{labels.id}: {flag_id} evidence {q!r} is not in a caller turn" for q in quotes if q not in caller_text
            ]
    return problems


def kappa(first: list[bool], second: list[bool]) -> float:
    """Cohen's kappa of two yes/no labellings: agreement beyond what their rates alone would give."""
    n = len(first)
    if not n:
        return 1.0
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p_first, p_second = sum(first) / n, sum(second) / n
    expected = p_first * p_second + (1 - p_first) * (1 - p_second)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


@dataclass
class Agreement:
    """Flags are counted per (call, flag). `second` is scored with the first annotator as the
    reference; the engine against each annotator, and against the labels both agree on (a pair
    they disagree on is left out)."""

    calls: int = 0
    engine_calls: int = 0  # calls the engine was scored on
    category_same: int = 0
    priority_same: int = 0
    second: dict[str, Counts] = field(default_factory=lambda: {f: Counts() for f in RISK_FLAG_IDS})
    first_raised: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in RISK_FLAG_IDS})
    second_raised: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in RISK_FLAG_IDS})
    engine_first: Counts = field(default_factory=Counts)
    engine_second: Counts = field(default_factory=Counts)
    engine_agreed: Counts = field(default_factory=Counts)
    # The engine's false alarms against the first annotator on flags the second marked doubtful.
    engine_false_doubtful: int = 0
    disagreements: list[str] = field(default_factory=list)

    def add(self, call: LabelledCall, labels: SecondLabels, engine_flags: set[str] | None = None) -> None:
        self.calls += 1
        self.category_same += call.category == labels.category
        self.priority_same += call.priority == labels.priority
        first, second = set(call.flags), set(labels.flags)
        for flag_id in RISK_FLAG_IDS:
            a, b = flag_id in first, flag_id in second
            self.first_raised[flag_id].append(a)
            self.second_raised[flag_id].append(b)
            self.second[flag_id].add(a, b)
            if a != b:
                doubt = " (doubtful)" if flag_id in labels.doubtful else ""
                self.disagreements.append(f"{call.id}: {flag_id} only by the {'first' if a else 'second'}{doubt}")
        if engine_flags is None:
            return
        self.engine_calls += 1
        for flag_id in RISK_FLAG_IDS:
            a, b = flag_id in first, flag_id in second
            got = flag_id in engine_flags
            self.engine_first.add(a, got)
            self.engine_second.add(b, got)
            if a == b:
                self.engine_agreed.add(a, got)
            self.engine_false_doubtful += got and not a and flag_id in labels.doubtful

    def markdown(self) -> str:
        lines = [
            f"Calls: {self.calls}. Same category: {self.category_same / self.calls:.3f}. "
            f"Same priority: {self.priority_same / self.calls:.3f}.",
            "",
            "| risk flag | second's precision | second's recall | kappa | first / second raised |",
            "|---|---|---|---|---|",
        ]
        for flag_id in RISK_FLAG_IDS:
            c, a, b = self.second[flag_id], self.first_raised[flag_id], self.second_raised[flag_id]
            lines.append(
                f"| {flag_id} | {c.precision:.3f} | {c.recall:.3f} | {kappa(a, b):.3f} | {sum(a)} / {sum(b)} |"
            )
        total = Counts.total(self.second.values())
        raised = f"{total.tp + total.fn} / {total.tp + total.fp}"
        lines.append(f"| **all flags** | {total.precision:.3f} | {total.recall:.3f} | | {raised} |")
        if self.engine_calls:
            lines += ["", "| engine against | precision | recall | false alarms | misses |", "|---|---|---|---|---|"]
            for name, c in [
                ("the first annotator", self.engine_first),
                ("the second annotator", self.engine_second),
                ("both, where they agree", self.engine_agreed),
            ]:
                lines.append(f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.fp} | {c.fn} |")
            lines += [
                "",
                f"Of the engine's {self.engine_first.fp} false alarms against the first annotator, "
                f"{self.engine_false_doubtful} are on flags the second marked doubtful.",
            ]
        return "\n".join(lines)
