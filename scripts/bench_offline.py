"""Offline (post-call) throughput and WER on every long recording in ../shared/data/speech/calls.

Runs callstream's OfflineTranscriber in one or more configurations and faster-whisper's own
BatchedInferencePipeline on the same files with the same model directory, interleaved file by file in
one process so that machine noise hits every contender alike. Reported per file and in total: audio
seconds, wall seconds (transcription of the decoded 16 kHz audio; decoding is timed apart), multiple of
real time, WER where the manifest has a transcript.

    python scripts/bench_offline.py --model base --out docs/bench-offline.json \\
        --variants ours-b1-B8-w1 ours-b5-B8-w1 fw-b5-B8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callstream import models
from callstream.evaluation.speech import DEFAULT_ROOT, load_manifest
from callstream.evaluation.wer import corpus_wer
from callstream.recordings import decode_audio
from callstream.recordings.transcribe import OfflineOptions, OfflineTranscriber

_SIDE_LABEL = re.compile(r"(?:^|\|)\s*[LR]:\s*")  # "L: text | R: text" in the stereo clip's reference


@dataclass(frozen=True)
class Recording:
    id: str
    path: Path
    transcript: str
    audio: np.ndarray
    duration_s: float
    decode_s: float


def load_recordings(root: Path) -> list[Recording]:
    out = []
    for clip in load_manifest(root):
        if clip.path_16k.relative_to(root).parts[0] != "calls":
            continue
        started = time.perf_counter()
        decoded = decode_audio(clip.path_16k, max_duration_s=4 * 3600)
        decode_s = time.perf_counter() - started
        audio = decoded.channels[0] if len(decoded.channels) == 1 else np.mean(decoded.channels, axis=0)
        transcript = _SIDE_LABEL.sub(" ", clip.transcript).strip()
        out.append(Recording(clip.id, clip.path_16k, transcript, audio, decoded.duration_s, decode_s))
    return out


class Ours:
    """ours-b<beam>-B<batch>-w<workers>[-g<gap s>]"""

    def __init__(self, name: str, model: str) -> None:
        opts = dict(re.findall(r"-([a-zA-Z])([\d.]+)", name))
        self.options = OfflineOptions(
            beam_size=int(opts.get("b", 1)),
            batch_size=int(opts.get("B", 8)),
            workers=int(opts.get("w", 1)),
            max_gap_s=float(opts.get("g", OfflineOptions().max_gap_s)),
        )
        self.engine = OfflineTranscriber.load(model, options=self.options)

    def run(self, rec: Recording) -> str:
        from callstream.recordings.decode import DecodedAudio

        decoded = DecodedAudio([rec.audio], rec.duration_s, 16_000, 1, "pcm_f32le", "array")
        result = self.engine.transcribe(decoded)
        return " ".join(s.text for s in result.segments)


class FasterWhisperBatched:
    """fw-b<beam>-B<batch>: BatchedInferencePipeline with its defaults except those two."""

    def __init__(self, name: str, model: str) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        opts = dict(re.findall(r"-([a-zA-Z])(\d+)", name))
        self.beam_size = int(opts.get("b", 5))
        self.batch_size = int(opts.get("B", 8))
        whisper = WhisperModel(
            models.resolve_whisper(model), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1
        )
        self.pipeline = BatchedInferencePipeline(whisper)

    def run(self, rec: Recording) -> str:
        segments, _ = self.pipeline.transcribe(rec.audio, batch_size=self.batch_size, beam_size=self.beam_size)
        return " ".join(s.text.strip() for s in segments)


def contender(name: str, model: str) -> Ours | FasterWhisperBatched:
    return Ours(name, model) if name.startswith("ours") else FasterWhisperBatched(name, model)


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": fields.get("Model name", "?").strip(),
        "cpus": fields.get("CPU(s)", "?").strip(),
        "python": platform.python_version(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def summarise(rows: list[dict]) -> dict:
    audio_s = sum(r["audio_s"] for r in rows)
    wall_s = sum(r["wall_s"] for r in rows)
    scored = [(r["reference"], r["hypothesis"]) for r in rows if r["reference"]]
    return {
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall_s, 2),
        "x_real_time": round(audio_s / wall_s, 1),
        "wer": round(corpus_wer(scored), 4) if scored else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--variants", nargs="+", default=["ours-b1-B8-w1", "fw-b5-B8"])
    parser.add_argument("--rounds", type=int, default=1, help="repeat every file this many times (best wall kept)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    recordings = load_recordings(args.root)
    engines = {name: contender(name, args.model) for name in args.variants}
    for engine in engines.values():  # warm-up: first-call allocations are not throughput
        engine.run(recordings[0])
    rows: dict[str, list[dict]] = {name: [] for name in engines}
    for rec in recordings:
        for name, engine in engines.items():
            walls = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                hyp = engine.run(rec)
                walls.append(time.perf_counter() - started)
            wall_s = min(walls)
            wer = corpus_wer([(rec.transcript, hyp)]) if rec.transcript else None
            row = {
                "file": rec.id,
                "audio_s": round(rec.duration_s, 2),
                "decode_s": round(rec.decode_s, 3),
                "wall_s": round(wall_s, 3),
                "x_real_time": round(rec.duration_s / wall_s, 1),
                "wer": None if wer is None else round(wer, 4),
                "reference": rec.transcript,
                "hypothesis": hyp,
            }
            rows[name].append(row)
            print(f"{name:18} {rec.id:32} {rec.duration_s:7.1f}s {wall_s:7.2f}s {row['x_real_time']:6.1f}x  wer={wer}")
    summary = {name: summarise(r) for name, r in rows.items()}
    print()
    for name, s in summary.items():
        audio, wall, speed = s["audio_s"], s["wall_s"], s["x_real_time"]
        print(f"{name:18} total {audio:7.1f}s audio {wall:7.2f}s wall {speed:6.1f}x  wer={s['wer']}")
    if args.out:
        report = {"machine": machine(), "model": args.model, "summary": summary, "files": rows}
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
