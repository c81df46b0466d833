"""The recording worker: a child process that decodes and transcribes uploaded recordings.

Why a process: untrusted files go through FFmpeg's decoders here, so a crash or a runaway
allocation takes down this worker, not the live calls; and the worker runs at the lowest CPU
priority, so the kernel gives live calls' decoding the cores first. The server talks to it
over stdin/stdout, one JSON object per line:

    server -> worker  {"job": ID, "path": FILE, "language": "sw"|null, "channel_legs": {"0": "caller"},
                       "translate": true}
    worker -> server  {"ready": true}                  once the models are loaded
                      {"job": ID, "progress": 0.42}     now and then
                      {"job": ID, "result": {...}}      the transcript (recordings.output.result_dict)
                      {"job": ID, "error": "...", "kind": "audio"|"internal"}

It dies with its parent (PR_SET_PDEATHSIG), so a killed server leaves no orphan decoding.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

PROGRESS_EVERY_S = 1.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):  # not Linux: the worker still exits when its stdin closes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Channel:
    """Line-delimited JSON on the real stdout; everything else (logs) goes to stderr."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        sys.stdout = sys.stderr

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, ensure_ascii=False) + "\n")
        self._out.flush()


def _progress_reporter(channel: _Channel, job: str):
    last = [0.0]

    def report(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            channel.send({"job": job, "progress": round(fraction, 3)})

    return report


def serve(args: argparse.Namespace) -> int:
    from callstream.recordings.decode import AudioDecodeError, decode_audio
    from callstream.recordings.output import result_dict
    from callstream.recordings.transcribe import OfflineOptions, OfflineTranscriber

    channel = _Channel()
    transcriber = OfflineTranscriber.load(
        args.model,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        languages=frozenset(filter(None, args.languages.split(","))),
        options=OfflineOptions(beam_size=args.beam_size),
    )
    channel.send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        job = request["job"]
        try:
            audio = decode_audio(Path(request["path"]), max_duration_s=args.max_duration_s)
            result = transcriber.transcribe(
                audio,
                language=request.get("language"),
                translate=bool(request.get("translate")),
                channel_legs={int(k): v for k, v in request.get("channel_legs", {}).items()} or None,
                progress=_progress_reporter(channel, job),
            )
            body = result_dict(Path(request["path"]).name, result)
            body.pop("file", None)
            body.pop("insights", None)  # the server adds them, on its NLP thread
            channel.send({"job": job, "result": body})
        except AudioDecodeError as exc:
            channel.send({"job": job, "error": str(exc), "kind": "audio"})
        except Exception as exc:
            print(f"recording worker: job {job} failed: {exc!r}", file=sys.stderr)
            channel.send({"job": job, "error": f"transcription failed: {exc}", "kind": "internal"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callstream.recordings.worker")
    parser.add_argument("--model", default="base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--languages", default="")
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--max-duration-s", type=float, default=4 * 3600)
    parser.add_argument("--nice", type=int, default=19)
    args = parser.parse_args(argv)
    _die_with_parent()
    if args.nice:
        os.nice(args.nice)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
