#!/usr/bin/env python3
"""Score live insights (category, priority, risk flags, entities) on a labelled transcript set.

scripts/eval_insights.py tests/data/insights_eval.jsonl [--errors] [--out report.md] [--threshold T]

Any labelled set scores the same way, a helpline's own reviewed calls (`callstream export-labels`)
included. `--threshold` scores with another flag threshold than the trained one, to see what a
change would cost in recall and buy in precision on those calls before setting `nlp.flag_threshold`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from callstream.evaluation.insights import evaluate, load_calls
from callstream.nlp.engine import InsightsEngine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--taxonomy", type=Path, default=None)
    parser.add_argument("--errors", action="store_true", help="list every miss and false alarm")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--threshold", type=float, help="flag threshold to score with (default: the trained one)")
    args = parser.parse_args()
    engine = InsightsEngine.load(args.taxonomy, flag_threshold=args.threshold)
    sections = []
    for path in args.data:
        started = time.perf_counter()
        calls = load_calls(path)
        report = evaluate(engine, calls)
        elapsed = time.perf_counter() - started
        title = path.name if args.threshold is None else f"{path.name} (flag threshold {args.threshold:.2f})"
        per_call_ms = elapsed / len(calls) * 1000
        sections.append(f"### {title}\n\n{report.markdown()}\n\n{per_call_ms:.0f} ms per call.\n")
        if args.errors:
            sections.append("\n".join(f"- {e}" for e in report.errors) + "\n")
    text = "\n".join(sections)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
