#!/usr/bin/env python3
"""Check labelled helpline transcripts (tests/data/insights_*.jsonl) against the taxonomy.

scripts/check_labelled_calls.py FILE...    exit 1 and list the problems if any call is malformed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from callstream.evaluation.insights import check_call, load_calls
from callstream.nlp import taxonomy as taxonomy_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    taxonomy = taxonomy_file.load()
    problems = []
    for path in args.files:
        try:
            calls = load_calls(path)
        except Exception as exc:
            problems.append(f"{path}: {exc}")
            continue
        for call in calls:
            problems += [f"{path.name}: {call.id}: {p}" for p in check_call(call, taxonomy)]
        print(f"{path}: {len(calls)} calls")
    print("\n".join(problems) or "ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
