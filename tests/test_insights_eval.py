"""Insights quality on labelled helpline transcripts (tests/data/), scored as docs/insights.md reports.

insights_eval.jsonl is held out: it was written independently and never used for tuning. Its
floors sit just under the measured numbers, so a change that makes the NLP worse fails here. The
product's targets (flag recall 0.95 at precision 0.8, category accuracy 0.85, entity F1 0.8 for
ages, places and phone numbers) are not all reached on held-out calls, and docs/insights.md says
so. The four tuning sets must stay close to what tuning reached on them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callstream.evaluation.insights import Report, evaluate, load_calls
from callstream.nlp.engine import InsightsEngine

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def engine() -> InsightsEngine:
    return InsightsEngine.load()


def _report(engine: InsightsEngine, name: str) -> Report:
    return evaluate(engine, load_calls(DATA / name))


def test_held_out_set(engine: InsightsEngine) -> None:
    report = _report(engine, "insights_eval.jsonl")
    assert report.calls >= 60
    flags = report.flags_total()
    assert flags.recall >= 0.48 and flags.precision >= 0.6, report.markdown()
    assert report.category_accuracy >= 0.55, report.markdown()
    for label, floor in (("AGE", 0.72), ("PLACE", 0.72), ("PHONE", 0.9)):
        assert report.entities[label].f1 >= floor, (label, report.markdown())


def test_tuning_sets(engine: InsightsEngine) -> None:
    for name in ("insights_dev.jsonl", "insights_tune.jsonl", "insights_tune2.jsonl", "insights_tune3.jsonl"):
        report = _report(engine, name)
        flags = report.flags_total()
        assert flags.recall >= 0.82 and flags.precision >= 0.85, (name, report.markdown())
        assert report.category_accuracy >= 0.62, (name, report.markdown())
