"""The second, blind annotation of the held-out sets (tests/data/second_annotator/) and the
agreement arithmetic that docs/insights.md reports from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from callstream.evaluation.agreement import SECOND_DIR, Agreement, SecondLabels, check_second, kappa, load_second
from callstream.evaluation.insights import LabelledCall, Turn, load_calls
from callstream.evaluation.training import HELD_OUT_SETS
from callstream.nlp import taxonomy

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", [f"insights_{s}.jsonl" for s in HELD_OUT_SETS])
def test_second_annotation_covers_its_set_and_follows_the_rules(name: str) -> None:
    calls = load_calls(DATA / name)
    assert check_second(calls, load_second(SECOND_DIR / name), taxonomy.load()) == []


def test_check_second_names_what_is_wrong() -> None:
    call = _call("a-1", flags=[], caller="My uncle beats me.")
    tax = taxonomy.load()
    wrong = SecondLabels(
        id="a-1",
        category="vane",
        subcategory="gbv.fgm",
        priority=4,
        flags=["beaten"],
        evidence={"physical_abuse": ["My aunt beats me."]},
        doubtful=["maybe"],
    )
    problems = check_second([call], [wrong], tax)
    assert any("not under 'vane'" in p for p in problems)
    assert any("priority 4" in p for p in problems)
    assert any("unknown flag 'beaten'" in p for p in problems)
    assert any("not in a caller turn" in p for p in problems)
    assert any("evidence for 'physical_abuse', which is not in flags" in p for p in problems)
    assert any("unknown doubtful flag 'maybe'" in p for p in problems)
    other_call = SecondLabels(id="a-2", category="vane", subcategory=None, priority=2, flags=[])
    assert check_second([call], [other_call], tax) == [
        "the second annotation does not list the first set's calls in the same order"
    ]


def test_kappa() -> None:
    assert kappa([True, False, True, False], [True, False, True, False]) == 1.0
    # Observed agreement 0.5, expected 0.5 from the rates alone: nothing beyond chance.
    assert kappa([True, True, False, False], [True, False, True, False]) == 0.0
    # 8 of 10 agree; rates 0.5 and 0.3 give expected 0.5.
    first = [True] * 5 + [False] * 5
    second = [True] * 3 + [False] * 2 + [False] * 5
    assert kappa(first, second) == pytest.approx((0.8 - 0.5) / 0.5)
    assert math.isnan(kappa([False] * 4, [False] * 4))  # nobody ever raised it: undefined


def test_agreement_counts_the_engine_against_each_annotator() -> None:
    calls = [
        _call("a-1", flags=["physical_abuse"]),
        _call("a-2", flags=["immediate_danger"]),
        _call("a-3", flags=[]),
    ]
    second = [
        SecondLabels(id="a-1", category="vane", subcategory=None, priority=2, flags=["physical_abuse"]),
        SecondLabels(id="a-2", category="vane", subcategory=None, priority=2, flags=[], doubtful=["immediate_danger"]),
        SecondLabels(id="a-3", category="gbv", subcategory=None, priority=2, flags=[], doubtful=["neglect"]),
    ]
    engine = [{"physical_abuse"}, {"immediate_danger"}, {"neglect", "self_harm"}]
    agreement = Agreement()
    for call, labels, raised in zip(calls, second, engine, strict=True):
        agreement.add(call, labels, raised)
    assert agreement.category_same == 2
    assert agreement.second_vs_first("immediate_danger").fn == 1
    assert agreement.disagreements == [
        "a-2: immediate_danger only by the first (doubtful)",
        "a-3: category vane by the first, gbv by the second",
    ]
    # Against the first: 2 right, 2 false (neglect, self_harm). Against the second: 1 right, 3 false.
    assert (agreement.engine_first.tp, agreement.engine_first.fp) == (2, 2)
    assert (agreement.engine_second.tp, agreement.engine_second.fp) == (1, 3)
    # Where they agree, a-2's immediate danger is left out.
    assert (agreement.engine_agreed.tp, agreement.engine_agreed.fp) == (1, 2)
    assert agreement.engine_false_on_doubtful == 1
    report = agreement.markdown()
    assert "| the first annotator | 0.500 | 1.000 | 2 | 0 |" in report
    assert "| both, where they agree | 0.333 | 1.000 | 2 | 0 |" in report
    assert "| physical_abuse | 1.000 | 1.000 | 1.000 | 1 / 1 |" in report
    assert "| neglect | 1.000 | 1.000 | n/a | 0 / 0 |" in report
    assert "2 false alarms against the first annotator, 0 are flags the second raised and 1 are on" in report
    assert Agreement().markdown() == "No calls."


def _call(call_id: str, flags: list[str], caller: str = "Hello.") -> LabelledCall:
    return LabelledCall(
        id=call_id,
        caller_role="child",
        languages=["en"],
        turns=[Turn("agent", "Child helpline."), Turn("caller", caller)],
        category="vane",
        subcategory=None,
        priority=2,
        flags=flags,
        entities=[],
    )
