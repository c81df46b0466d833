"""Insights quality on labelled helpline transcripts (tests/data/), scored as docs/insights.md reports.

insights_eval.jsonl, insights_eval2.jsonl, insights_eval3.jsonl and insights_eval4.jsonl are held
out: written by annotators who saw none of the training sets, never trained on, and scored for the
numbers in docs/insights.md (which says how often each was scored). Their floors sit just under
those numbers, so a change that makes the NLP worse fails here. The product's targets (flag recall 0.95 at
precision 0.8, category accuracy 0.85, entity F1 0.8 for ages, places and phone numbers) are not
all reached on held-out calls, and docs/insights.md says so.
Two training sets check that the shipped scorers still fit what they were trained on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.evaluation.insights import Report, evaluate, load_calls
from callstream.nlp.engine import InsightsEngine

DATA = Path(__file__).parent / "data"
# Measured 2026-11-22 with round 10's patterns and round 9's scorers (docs/insights.md): eval recall
# 0.982 at precision 0.625, category 0.833, AGE / PLACE / PHONE / PERSON / ORG F1 0.903 / 0.882 /
# 0.933 / 0.860 / 0.800; eval2 0.973 at 0.670, 0.900, 0.877 / 0.904 / 0.959 / 0.939 / 0.773; eval3
# 0.966 at 0.615, 0.900, 0.902 / 0.926 / 0.983 / 0.967 / 0.952; eval4 0.887 at 0.561, 0.875, 0.869 /
# 0.845 / 0.991 / 0.924 / 0.800. eval4's recall fell from 0.919 in round 8 (two more flags missed near
# the threshold, which rose from 0.53 to 0.56); docs/insights.md has the trade.
# Training sets tune3 and train4: recall 1.0, precision 0.85 / 0.72, category 1.0 / 0.988.
TRAIN_RECALL, TRAIN_PRECISION, TRAIN_CATEGORY = 0.97, 0.6, 0.95


@pytest.fixture(scope="module")
def engine() -> InsightsEngine:
    return InsightsEngine.load()


def _floors(age: float, place: float, phone: float, person: float, org: float) -> dict[str, float]:
    return {"AGE": age, "PLACE": place, "PHONE": phone, "PERSON": person, "ORG": org}


def _report(engine: InsightsEngine, name: str) -> Report:
    return evaluate(engine, load_calls(DATA / name))


@pytest.mark.parametrize(
    ("name", "recall", "precision", "category", "entity_floors"),
    [
        ("insights_eval.jsonl", 0.96, 0.6, 0.82, _floors(0.87, 0.86, 0.9, 0.83, 0.77)),
        ("insights_eval2.jsonl", 0.95, 0.64, 0.88, _floors(0.85, 0.88, 0.92, 0.91, 0.75)),
        ("insights_eval3.jsonl", 0.95, 0.59, 0.88, _floors(0.87, 0.9, 0.95, 0.94, 0.92)),
        ("insights_eval4.jsonl", 0.87, 0.53, 0.86, _floors(0.84, 0.82, 0.96, 0.9, 0.77)),
    ],
)
def test_held_out_set(
    engine: InsightsEngine, name: str, recall: float, precision: float, category: float, entity_floors: dict
) -> None:
    report = _report(engine, name)
    assert report.calls >= 60
    flags = report.flags_total()
    assert flags.recall >= recall and flags.precision >= precision, report.markdown()
    assert report.category_accuracy >= category, report.markdown()
    for label, floor in entity_floors.items():
        assert report.entities[label].f1 >= floor, (label, report.markdown())


def test_training_sets(engine: InsightsEngine) -> None:
    for name in ("insights_tune3.jsonl", "insights_train4.jsonl"):
        report = _report(engine, name)
        flags = report.flags_total()
        assert flags.recall >= TRAIN_RECALL and flags.precision >= TRAIN_PRECISION, (name, report.markdown())
        assert report.category_accuracy >= TRAIN_CATEGORY, (name, report.markdown())
