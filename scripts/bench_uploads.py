#!/usr/bin/env python3
"""Post-call throughput through the product path: upload every recording in ../shared/data/speech/calls
to a callstream server at once (POST /v1/recordings), wait for every result, report audio seconds
per wall second and WER, for each worker layout asked for.

    scripts/bench_uploads.py --layouts 1x2 2x1 --out docs/bench-uploads.json

A layout WxT is W worker processes with T CTranslate2 threads each.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from bench_live import ServerProcess
from callstream.evaluation.speech import DEFAULT_ROOT, load_manifest
from callstream.evaluation.wer import corpus_wer


async def run_layout(model: str, workers: int, threads: int) -> dict:
    calls = [c for c in load_manifest(DEFAULT_ROOT) if c.path_16k.relative_to(DEFAULT_ROOT).parts[0] == "calls"]
    server = ServerProcess(model, "", recordings_config=f"workers = {workers}\nworker_threads = {threads}")
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait_ready(session)
            base = f"http://127.0.0.1:{server.http_port}"
            started = time.monotonic()
            ids = {}
            for clip in calls:
                body = io.BytesIO(clip.path_16k.read_bytes())
                async with session.post(f"{base}/v1/recordings", data=body) as r:
                    ids[clip.id] = (await r.json())["id"]
            results = {}
            while len(results) < len(ids):
                await asyncio.sleep(0.25)
                for clip_id, job_id in ids.items():
                    if clip_id in results:
                        continue
                    async with session.get(f"{base}/v1/recordings/{job_id}") as r:
                        body = await r.json()
                    if body["status"] in ("done", "failed"):
                        results[clip_id] = (body, time.monotonic() - started)
            wall_s = time.monotonic() - started
    finally:
        server.stop()
    audio_s = sum(c.duration_s for c in calls)
    pairs = [
        (c.transcript, " ".join(s["text"] for s in results[c.id][0]["result"]["segments"]))
        for c in calls
        if c.transcript and results[c.id][0]["status"] == "done"
    ]
    return {
        "layout": f"{workers}x{threads}",
        "recordings": len(calls),
        "failed": [c for c, (b, _) in results.items() if b["status"] != "done"],
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall_s, 2),
        "x_real_time": round(audio_s / wall_s, 1),
        "wer": round(corpus_wer(pairs), 4),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--layouts", nargs="+", default=["1x2", "2x1"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for layout in args.layouts:
        workers, threads = (int(x) for x in layout.split("x"))
        rows.append(await run_layout(args.model, workers, threads))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(
            json.dumps(
                {"model": args.model, "date_utc": time.strftime("%FT%TZ", time.gmtime()), "layouts": rows}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    asyncio.run(main())
