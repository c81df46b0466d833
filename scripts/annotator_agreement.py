#!/usr/bin/env python3
"""How far a second, blind annotation of a labelled set agrees with the first, and how the engine
scores against each annotator and against the labels both agree on.

scripts/annotator_agreement.py tests/data/insights_eval.jsonl [...] [--second-dir DIR]
    [--engine [--threshold T]] [--list]

The second annotation of tests/data/NAME.jsonl is DIR/NAME.jsonl (default tests/data/second_annotator).
`--engine` also runs the engine over the calls (as scripts/eval_insights.py does); `--list` names
every call whose flags or category the two annotators disagree on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callstream.evaluation.agreement import SECOND_DIR, Agreement, check_second, load_second
from callstream.evaluation.insights import analyse, load_calls
from callstream.nlp import taxonomy
from callstream.nlp.engine import InsightsEngine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--second-dir", type=Path, default=SECOND_DIR)
    parser.add_argument("--engine", action="store_true", help="score the engine against both annotators too")
    parser.add_argument("--list", action="store_true", help="list the disagreements")
    parser.add_argument("--threshold", type=float, help="the engine's flag threshold (default: the trained one)")
    args = parser.parse_args()
    engine = InsightsEngine.load(flag_threshold=args.threshold) if args.engine else None
    tax = taxonomy.load()
    everything = Agreement()
    sections = []
    for path in args.data:
        second_path = args.second_dir / path.name
        if not second_path.exists():
            print(f"{path}: no second annotation at {second_path}", file=sys.stderr)
            return 1
        calls, second = load_calls(path), load_second(second_path)
        problems = check_second(calls, second, tax)
        if problems:
            print(f"{args.second_dir / path.name}:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
            return 1
        agreement = Agreement()
        for call, labels in zip(calls, second, strict=True):
            raised = {f.id for f in analyse(engine, call).risk_flags} if engine else None
            agreement.add(call, labels, raised)
            everything.add(call, labels, raised)
        sections.append(f"### {path.name}\n\n{agreement.markdown()}\n")
        if args.list and agreement.disagreements:
            sections.append("\n".join(f"- {d}" for d in agreement.disagreements) + "\n")
    if len(args.data) > 1:
        sections.append(f"### All {len(args.data)} sets\n\n{everything.markdown()}\n")
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
