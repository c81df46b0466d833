"""Render bench_live.py JSON results as the Markdown table used in docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("calls", "calls"),
    ("final_latency_p50_s", "final p50 s"),
    ("final_latency_p95_s", "final p95 s"),
    ("final_latency_max_s", "final max s"),
    ("first_partial_p50_s", "1st partial p50 s"),
    ("first_partial_p95_s", "1st partial p95 s"),
    ("wer", "WER streaming"),
    ("offline_wer_same_clips", "WER offline, same clips"),
    ("server_cpu_percent", "server CPU % (of one core)"),
    ("server_rss_peak_mb", "RSS peak MB"),
    ("asr_busy_percent", "ASR busy %"),
    ("asr_ms_per_batch", "ms per decode"),
]


def render(path: Path) -> str:
    result = json.loads(path.read_text())
    levels = result["levels"]
    columns = [(key, title) for key, title in COLUMNS if any(key in level for level in levels)]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for level in levels:
        lines.append("| " + " | ".join(_cell(level.get(key)) for key, _ in columns) + " |")
    missed = sorted({clip for level in levels for clip in level["clips_without_final"]})
    lines.append("")
    lines.append(
        f"Largest N with final p95 ≤ 1.5 s: **{result['largest_n_with_p95_le_1_5_s']}**. "
        f"Clips that never got a final: {', '.join(missed) or 'none'}."
    )
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "–" if value is None else str(value)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(render(Path(name)))
        print()
