"""The shared speech set (../shared/data/speech): manifest rows and audio, for tests and benchmarks."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

# ../shared/data/speech beside the repository, unless CALLSTREAM_SPEECH_DIR says otherwise.
DEFAULT_ROOT = Path(
    os.environ.get("CALLSTREAM_SPEECH_DIR") or Path(__file__).resolve().parents[3].parent / "shared" / "data" / "speech"
)


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    language: str
    duration_s: float
    path_8k: Path
    path_16k: Path
    transcript: str
    speaker: str


def load_manifest(root: Path = DEFAULT_ROOT) -> list[Clip]:
    with (root / "manifest.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Clip(
            r["id"],
            r["language"],
            float(r["duration_s"]),
            root / r["file_8k"],
            root / r["file_16k"],
            r["transcript"],
            r["speaker"],
        )
        for r in rows
    ]


def english_clips(root: Path = DEFAULT_ROOT) -> list[Clip]:
    """Every English clip with a reference transcript, calls excluded: the set WER is scored on."""
    return transcribed_clips("en", root)


def transcribed_clips(language: str, root: Path = DEFAULT_ROOT) -> list[Clip]:
    """Every clip in `language` with a reference transcript, calls excluded."""
    return [
        c
        for c in load_manifest(root)
        if c.language == language and c.transcript and c.path_8k.relative_to(root).parts[0] != "calls"
    ]
