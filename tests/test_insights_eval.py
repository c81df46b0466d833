"""Insights quality on labelled helpline transcripts (tests/data/), scored as docs/insights.md reports.

insights_eval.jsonl is held out: it was written independently and never used for tuning. Its
floors sit just under the measured numbers, so a change that makes the NLP worse fails here; the
product's targets (flag recall 0.95 at precision 0.8, category accuracy 0.85) are not reached yet on
held-out calls, and docs/insights.md says so. Entities meet theirs (F1 >= 0.8 for ages, places,
phone numbers). The three tuning sets must stay close to what tuning reached on them.
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
    assert flags.recall >= 0.55 and flags.precision >= 0.6, report.markdown()
    assert report.category_accuracy >= 0.6, report.markdown()
    for label in ("AGE", "PLACE", "PHONE"):
        assert report.entities[label].f1 >= 0.8, (label, report.markdown())


def test_tuning_sets(engine: InsightsEngine) -> None:
    for name in ("insights_dev.jsonl", "insights_tune.jsonl", "insights_tune2.jsonl"):
        report = _report(engine, name)
        flags = report.flags_total()
        assert flags.recall >= 0.93 and flags.precision >= 0.85, (name, report.markdown())
        assert report.category_accuracy >= 0.65, (name, report.markdown())
