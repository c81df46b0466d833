#!/usr/bin/env python3
"""Train the learned risk-flag and category scorers (src/callstream/nlp/learned.py).

scripts/train_insights.py [--target-recall 0.95 | --threshold T] [--add FILE ...] [--report FILE.md] [--cache DIR]

Reads the training sets in tests/data (never the held-out ones) and any `--add` file, such as a
helpline's own reviewed calls from `callstream export-labels`; cross-validates leaving one set
out at a time, picks the flag threshold whose out-of-fold recall reaches the target, then trains
on every training set and writes src/callstream/nlp/data/insights_model.npz. `--threshold` keeps
a threshold chosen before: patterns written from these calls' misses find them again, so the recall
they add here is no evidence and must not buy a higher threshold (docs/insights.md, round 10).
Deterministic: the same data gives the same weights. About 55 minutes on two cores for 1,288 calls,
9 of them featurising, which --cache keeps between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from callstream.evaluation import training
from callstream.evaluation.insights import DATA_DIR, Counts, analyse, load_calls
from callstream.nlp import learned, taxonomy
from callstream.nlp.embedder import SentenceEmbedder
from callstream.nlp.engine import InsightsEngine
from callstream.nlp.taxonomy import RISK_FLAG_IDS


def featurise_sets(sets: list[tuple[str, Path]], cache: Path | None) -> list[training.CallFeatures]:
    """(name, file) per set. Featurising is most of the time; `cache` keeps each set's features, keyed
    by its content, the feature format and the taxonomy, whose patterns decide `rule_flags` (other
    code changed: clear the cache)."""
    embedder = patterns_only = None
    data = []
    for name, path in sets:
        key = hashlib.sha1(path.read_bytes() + f"{learned.FORMAT_VERSION} {learned.CLAUSE_WEIGHT}".encode())
        key.update(taxonomy.DEFAULT_PATH.read_bytes())
        cached = cache / f"{name}-{key.hexdigest()[:12]}.pkl" if cache else None
        if cached and cached.exists():
            data += pickle.loads(cached.read_bytes())
            continue
        embedder = embedder or SentenceEmbedder(threads=2)
        patterns_only = patterns_only or InsightsEngine.load(model_path=None)
        features = []
        for call in load_calls(path):
            f = training.featurise(call, name, embedder, patterns_only.clauses)
            f.rule_flags = frozenset(hit.id for hit in analyse(patterns_only, call).risk_flags)
            features.append(f)
        if cached:
            cached.write_bytes(pickle.dumps(features))
        data += features
    return data


def _counts(raised: np.ndarray, labelled: np.ndarray) -> Counts:
    return Counts(
        tp=int((raised & labelled).sum()), fp=int((raised & ~labelled).sum()), fn=int((~raised & labelled).sum())
    )


def report(
    data: list[training.CallFeatures], cv: training.CrossValidation, threshold: float, category_ids: list[str]
) -> str:
    labels = training.call_flag_labels(data).astype(bool)
    raised = cv.raised(data, threshold)
    lines = [
        f"Flag threshold {threshold:.2f} (patterns raise a flag on their own too).",
        "",
        "| risk flag | precision | recall | support |",
        "|---|---|---|---|",
    ]
    for k, flag_id in enumerate([*RISK_FLAG_IDS, "**all flags**"]):
        got, want = (raised[:, k], labels[:, k]) if k < len(RISK_FLAG_IDS) else (raised, labels)
        c = _counts(got, want)
        lines.append(f"| {flag_id} | {c.precision:.3f} | {c.recall:.3f} | {c.tp + c.fn} |")
    lines += [
        "",
        "| held-out set | calls | flag recall | flag precision | category accuracy |",
        "|---|---|---|---|---|",
    ]
    sources = np.array(cv.sources)
    predicted = np.array([category_ids[int(np.argmax(p))] for p in cv.category_probs])
    truth = np.array([d.call.category for d in data])
    for name in [*dict.fromkeys(cv.sources), None]:
        rows = sources == name if name else np.ones(len(data), bool)
        c = _counts(raised[rows], labels[rows])
        accuracy = np.mean(predicted[rows] == truth[rows])
        lines.append(
            f"| {name or '**all**'} | {int(rows.sum())} | {c.recall:.3f} | {c.precision:.3f} | {accuracy:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--target-recall", type=float, default=0.95)
    choice.add_argument("--threshold", type=float, help="use this flag threshold instead of choosing one")
    parser.add_argument("--add", type=Path, nargs="+", default=[], help="more labelled calls, each file one set")
    parser.add_argument("--out", type=Path, default=learned.MODEL_PATH)
    parser.add_argument("--report", type=Path, help="write the cross-validation tables here (markdown)")
    parser.add_argument("--cache", type=Path, help="a folder to keep featurised sets in between runs")
    args = parser.parse_args()
    started = time.perf_counter()
    category_ids = [c.id for c in taxonomy.load().categories]
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    sets = [(name, DATA_DIR / f"insights_{name}.jsonl") for name in training.TRAINING_SETS]
    sets += [(path.stem, path) for path in args.add]
    if len({name for name, _ in sets}) < len(sets):
        parser.error("each --add file needs a name (its stem) of its own: sets are held out by name")
    data = featurise_sets(sets, args.cache)
    print(f"{len(data)} calls featurised in {time.perf_counter() - started:.0f} s", flush=True)
    hyper = training.Hyper()
    cv = training.cross_validate(data, category_ids, hyper)
    chosen = training.threshold_for_recall(data, cv, args.target_recall)
    print(f"threshold for out-of-fold recall {args.target_recall}: {chosen:.2f}", flush=True)
    threshold = chosen if args.threshold is None else args.threshold
    text = report(data, cv, threshold, category_ids)
    print(text, flush=True)
    trained_on = f"{len(data)} calls: {', '.join(name for name, _ in sets)}"
    training.fit(data, cv, category_ids, hyper, threshold, trained_on).save(args.out)
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    if args.report:
        args.report.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
