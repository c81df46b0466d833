"""How far two annotators of the same calls agree, and how the engine does against each of them.

A second annotator labels a held-out set's calls again, blind to the first labels (the turns only,
and docs/labelling.md). Where the two agree, a label is as sure as these sets can make it; where
they do not, no scorer can be right by both. The second labels live in
tests/data/second_annotator/, one line per call, in the first set's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from callstream.evaluation.insights import DATA_DIR, Counts, LabelledCall, check_labels
from callstream.nlp.taxonomy import RISK_FLAG_IDS, Taxonomy

SECOND_DIR = DATA_DIR / "second_annotator"


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
    """What is wrong with a second annotation: other calls than the first set's, or labels that
    break the rules a labelled call keeps (`check_labels`)."""
    if not first or [c.id for c in first] != [s.id for s in second]:
        return ["the second annotation does not list the first set's calls in the same order"]
    problems = []
    for call, labels in zip(first, second, strict=True):
        problems += [f"{labels.id}: {p}" for p in check_labels(labels, call, taxonomy)]
        problems += [f"{labels.id}: unknown doubtful flag {f!r}" for f in labels.doubtful if f not in RISK_FLAG_IDS]
    return problems


def kappa(first: list[bool], second: list[bool]) -> float:
    """Cohen's kappa of two yes/no labellings: agreement beyond what their rates alone would give.
    NaN where it is undefined: when both always say the same one thing, chance explains it all."""
    n = len(first)
    if not n:
        return math.nan
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p_first, p_second = sum(first) / n, sum(second) / n
    expected = p_first * p_second + (1 - p_first) * (1 - p_second)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


@dataclass
class Agreement:
    """Flags are counted per (call, flag). The second annotator is scored with the first as the
    reference; the engine against each annotator, and against the labels both agree on (a pair
    they disagree on is left out)."""

    calls: int = 0
    category_same: int = 0
    priority_same: int = 0
    first_raised: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in RISK_FLAG_IDS})
    second_raised: dict[str, list[bool]] = field(default_factory=lambda: {f: [] for f in RISK_FLAG_IDS})
    engine_scored: bool = False
    engine_first: Counts = field(default_factory=Counts)
    engine_second: Counts = field(default_factory=Counts)
    engine_agreed: Counts = field(default_factory=Counts)
    # The engine's false alarms against the first annotator on flags the second marked doubtful.
    engine_false_on_doubtful: int = 0
    disagreements: list[str] = field(default_factory=list)

    def add(self, call: LabelledCall, labels: SecondLabels, engine_flags: set[str] | None = None) -> None:
        self.calls += 1
        self.category_same += call.category == labels.category
        self.priority_same += call.priority == labels.priority
        if call.category != labels.category:
            self.disagreements.append(
                f"{call.id}: category {call.category} by the first, {labels.category} by the second"
            )
        self.engine_scored |= engine_flags is not None
        for flag_id in RISK_FLAG_IDS:
            first, second = flag_id in call.flags, flag_id in labels.flags
            self.first_raised[flag_id].append(first)
            self.second_raised[flag_id].append(second)
            if first != second:
                doubt = " (doubtful)" if flag_id in labels.doubtful else ""
                who = "first" if first else "second"
                self.disagreements.append(f"{call.id}: {flag_id} only by the {who}{doubt}")
            if engine_flags is not None:
                got = flag_id in engine_flags
                self.engine_first.add(first, got)
                self.engine_second.add(second, got)
                if first == second:
                    self.engine_agreed.add(first, got)
                self.engine_false_on_doubtful += got and not first and flag_id in labels.doubtful

    def second_vs_first(self, flag_id: str) -> Counts:
        """The second annotator's flag `flag_id`, scored with the first as the reference."""
        counts = Counts()
        for first, second in zip(self.first_raised[flag_id], self.second_raised[flag_id], strict=True):
            counts.add(first, second)
        return counts

    def markdown(self) -> str:
        if not self.calls:
            return "No calls."
        lines = [
            f"Calls: {self.calls}. Same category: {self.category_same / self.calls:.3f}. "
            f"Same priority: {self.priority_same / self.calls:.3f}.",
            "",
            "| risk flag | second's precision | second's recall | kappa | first / second raised |",
            "|---|---|---|---|---|",
        ]
        for flag_id in RISK_FLAG_IDS:
            c, a, b = self.second_vs_first(flag_id), self.first_raised[flag_id], self.second_raised[flag_id]
            k = kappa(a, b)
            shown = "n/a" if math.isnan(k) else f"{k:.3f}"
            lines.append(f"| {flag_id} | {c.precision:.3f} | {c.recall:.3f} | {shown} | {sum(a)} / {sum(b)} |")
        total = Counts.total(self.second_vs_first(f) for f in RISK_FLAG_IDS)
        raised = f"{total.tp + total.fn} / {total.tp + total.fp}"
        lines.append(f"| **all flags** | {total.precision:.3f} | {total.recall:.3f} | | {raised} |")
        if self.engine_scored:
            lines += ["", "| engine against | precision | recall | false alarms | misses |", "|---|---|---|---|---|"]
            for name, c in [
                ("the first annotator", self.engine_first),
                ("the second annotator", self.engine_second),
                ("both, where they agree", self.engine_agreed),
            ]:
                lines.append(f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.fp} | {c.fn} |")
            # A false alarm against the first that is not one where both agree was raised by the second.
            raised_by_second = self.engine_first.fp - self.engine_agreed.fp
            lines += [
                "",
                f"Of the engine's {self.engine_first.fp} false alarms against the first annotator, "
                f"{raised_by_second} are flags the second raised and {self.engine_false_on_doubtful} "
                "are on flags the second marked doubtful.",
            ]
        return "\n".join(lines)
