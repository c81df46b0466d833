"""Live benchmark: N concurrent AudioSocket calls of real 8 kHz speech against a callstream server process.

Each call plays English clips from ../shared/data/speech as Asterisk would (UUID, audio 0.5 s later,
20 ms frames at real pace, silence frames between clips). One WebSocket subscriber on /v1/events
times every event. Reported per N: latency from the end of each clip to its segment.final, from
the start of each clip to its first segment.partial, streaming WER, server CPU and peak RSS, and
for the insights: from each segment.final to the insights event that first includes it
(`insights_staleness`, debounce included), from the newest final an insights event includes to
that event (`insights_latency`), and the same from when the debounce let the event go, if later
(`insights_delay`, the NLP's own delay). With --upload FILE, that recording is uploaded
to POST /v1/recordings again and again while the calls run, to see what post-call work costs them.

    python scripts/bench_live.py --model base --calls 1 2 4 8 16 32 --out docs/bench-live.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from callstream.audiosocket.player import TimedMessage, call_messages, play, read_wav_pcm
from callstream.evaluation.speech import Clip, english_clips, transcribed_clips
from callstream.evaluation.wer import corpus_wer
from callstream.settings import NlpSettings

RATE_HZ = 8_000
english_clips_by_id = {c.id: c for c in english_clips()}


FIRST_AUDIO_DELAY_S = 0.5


@dataclass
class PlannedClip:
    clip: Clip
    start_s: float  # on the call clock (from the UUID)
    end_s: float
    finals: list[tuple[float, float, str, float]] = field(default_factory=list)  # start, end, text, received
    first_partial_at: float | None = None  # monotonic
    sent_end_at: float | None = None  # monotonic time the clip's last frame was sent


@dataclass
class PlannedCall:
    call_id: uuid.UUID
    start_delay_s: float
    clips: list[PlannedClip]
    messages: list[TimedMessage]
    connected_at: float = 0.0
    worst_late_s: float = 0.0  # how far the player fell behind its schedule
    final_arrivals: list[float] = field(default_factory=list)  # every segment.final, in order
    insights: list[tuple[int, float]] = field(default_factory=list)  # (final segments included, received)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plan_call(clips: list[Clip], gap_s: float, start_delay_s: float) -> PlannedCall:
    pcm = bytearray()
    planned = []
    silence = bytes(int(gap_s * RATE_HZ) * 2)
    for clip in clips:
        audio, rate = read_wav_pcm(clip.path_8k)
        assert rate == RATE_HZ
        start_s = FIRST_AUDIO_DELAY_S + len(pcm) / 2 / RATE_HZ
        pcm += audio
        planned.append(PlannedClip(clip, start_s, FIRST_AUDIO_DELAY_S + len(pcm) / 2 / RATE_HZ))
        pcm += silence
    call_id = uuid.uuid4()
    return PlannedCall(call_id, start_delay_s, planned, call_messages(call_id, bytes(pcm), RATE_HZ))


def plan_calls(n_calls: int, clips_per_call: int, gap_s: float, seed: int, language: str = "en") -> list[PlannedCall]:
    pool = transcribed_clips(language)  # not English: every final is translated too, as on many helplines
    rng = random.Random(seed)
    order = list(range(len(pool)))
    rng.shuffle(order)
    calls = []
    for i in range(n_calls):
        chosen = [pool[order[(i * clips_per_call + k) % len(pool)]] for k in range(clips_per_call)]
        calls.append(plan_call(chosen, gap_s, start_delay_s=rng.uniform(0, 2.0)))
    return calls


class ServerProcess:
    def __init__(
        self, model: str, extra_config: str, log_path: Path | None = None, recordings_config: str = ""
    ) -> None:
        self.http_port, self.audiosocket_port = free_port(), free_port()
        self.dir = tempfile.TemporaryDirectory()
        config = Path(self.dir.name) / "bench.toml"
        config.write_text(
            f"[audiosocket]\nport = {self.audiosocket_port}\nmax_calls = 256\n"
            f"[http]\nport = {self.http_port}\n"
            f'[store]\npath = "{self.dir.name}/bench.db"\n'
            f'[recordings]\ndir = "{self.dir.name}/recordings"\n{recordings_config}\n'
            f'[log]\nlevel = "{"info" if log_path else "warning"}"\nformat = "json"\n'
            f'[asr]\nmodel = "{model}"\n{extra_config}\n'
        )
        self._log = log_path.open("w") if log_path else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callstream", "serve", "--config", str(config)], stderr=self._log
        )

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                async with session.get(f"http://127.0.0.1:{self.http_port}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError("server not ready")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.dir.cleanup()
        if self._log:
            self._log.close()


async def scrape_metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return {
        name: float(value)
        for name, value in (line.split() for line in text.splitlines() if line and not line.startswith("#"))
    }


def executor_summary(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict:
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    batches = max(delta["callstream_asr_batches_total"], 1)
    return {
        "asr_busy_percent": round(100 * delta["callstream_asr_busy_seconds_total"] / wall_s, 1),
        "asr_items_per_batch": round(delta["callstream_asr_items_total"] / batches, 2),
        # Host speed drifts on shared machines: the mean decode cost lets runs be compared.
        "asr_ms_per_batch": round(1000 * delta["callstream_asr_busy_seconds_total"] / batches, 1),
        "asr_fast_finals": int(delta["callstream_asr_fast_finals_total"]),
        "vad_busy_percent": round(100 * delta["callstream_vad_busy_seconds_total"] / wall_s, 1),
    }


def match_event(calls: dict[str, PlannedCall], event: dict, received: float) -> None:
    call = calls.get(event.get("call_id", ""))
    if call is not None and event["type"] == "insights" and not event["final"]:
        # Live updates only: the final insights follow the end of the call, not a segment.
        call.insights.append((event["segments"], received))
    if call is None or event["type"] not in ("segment.final", "segment.partial"):
        return
    if event["type"] == "segment.final":
        call.final_arrivals.append(received)
    # The clip this segment overlaps most, on the call clock.
    best = max(call.clips, key=lambda c: min(c.end_s, event["end"]) - max(c.start_s, event["start"]))
    if min(best.end_s, event["end"]) - max(best.start_s, event["start"]) <= 0:
        return
    if event["type"] == "segment.final":
        best.finals.append((event["start"], event["end"], event["text"], received))
    elif best.first_partial_at is None:
        best.first_partial_at = received


async def subscribe(url: str, calls: dict[str, PlannedCall], done: asyncio.Event, ended: set[str]) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        async for msg in ws:
            event = json.loads(msg.data)
            match_event(calls, event, time.monotonic())
            if event["type"] == "call.ended":
                ended.add(event["call_id"])
                if ended >= calls.keys():
                    done.set()
                    return


async def run_call(call: PlannedCall, port: int) -> None:
    await asyncio.sleep(call.start_delay_s)
    call.connected_at = time.monotonic()
    call.worst_late_s = await play("127.0.0.1", port, call.messages)
    for clip in call.clips:
        clip.sent_end_at = call.connected_at + clip.end_s


def offline_transcripts(model: str, clips: list[Clip]) -> dict[str, str]:
    """Each clip decoded whole with faster-whisper's standard pipeline (30 s window, beam 5): the reference
    the streaming transcripts are compared with. Same 8 kHz audio, same soxr resampling."""
    import soxr
    from faster_whisper import WhisperModel

    from callstream.models import resolve_whisper

    whisper = WhisperModel(resolve_whisper(model), device="cpu", compute_type="int8")
    texts = {}
    for clip in {c.id: c for c in clips}.values():
        pcm, rate = read_wav_pcm(clip.path_8k)
        audio = soxr.resample(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768, rate, 16_000)
        segments, _ = whisper.transcribe(audio, beam_size=5)
        texts[clip.id] = " ".join(s.text.strip() for s in segments)
    return texts


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def insights_timing(calls: list[PlannedCall], update_interval_s: float) -> dict:
    """`latency`: newest final an update includes -> that update. `delay`: the same, but counted from
    when the debounce let the update go (the previous update + the interval) if that was later, so
    it is the NLP's own delay. `staleness`: each final -> the first update that includes it."""
    latency, delay, staleness, never = [], [], [], 0
    for call in calls:
        finals = call.final_arrivals
        previous = float("-inf")
        for included, received in call.insights:
            if 0 < included <= len(finals):
                latency.append(received - finals[included - 1])
                delay.append(received - max(finals[included - 1], previous + update_interval_s))
            previous = received
        for k, final_at in enumerate(finals, 1):
            first = next((received for included, received in call.insights if included >= k), None)
            if first is None:
                never += 1
            else:
                staleness.append(first - final_at)
    return {
        "insights_events": sum(len(c.insights) for c in calls),
        "insights_delay_p50_s": percentile(delay, 50),
        "insights_delay_p95_s": percentile(delay, 95),
        "insights_latency_p50_s": percentile(latency, 50),
        "insights_latency_p95_s": percentile(latency, 95),
        "insights_staleness_p50_s": percentile(staleness, 50),
        "insights_staleness_p95_s": percentile(staleness, 95),
        "finals_never_in_insights": never,
    }


def summarise(n_calls: int, calls: list[PlannedCall], cpu_s: float, wall_s: float, rss_peak_mb: float) -> dict:
    final_latency, partial_latency, pairs, missed = [], [], [], []
    for call in calls:
        for clip in call.clips:
            if not clip.finals:
                missed.append(clip.clip.id)
                pairs.append((clip.clip.transcript, ""))
                continue
            last_final_at = max(received for *_, received in clip.finals)
            final_latency.append(last_final_at - (call.connected_at + clip.end_s))
            text = " ".join(t for _, _, t, _ in sorted(clip.finals))
            pairs.append((clip.clip.transcript, text))
            if clip.first_partial_at is not None:
                partial_latency.append(clip.first_partial_at - (call.connected_at + clip.start_s))
    return {
        "calls": n_calls,
        "clips": len(pairs),
        "clips_without_final": missed,
        "final_latency_p50_s": percentile(final_latency, 50),
        "final_latency_p95_s": percentile(final_latency, 95),
        "final_latency_max_s": percentile(final_latency, 100),
        "first_partial_p50_s": percentile(partial_latency, 50),
        "first_partial_p95_s": percentile(partial_latency, 95),
        "wer": round(corpus_wer(pairs), 4),
        "server_cpu_percent": round(100 * cpu_s / wall_s, 1),
        "server_rss_peak_mb": round(rss_peak_mb, 1),
        "player_worst_late_s": round(max(c.worst_late_s for c in calls), 3),
        **insights_timing(calls, NlpSettings().update_interval_s),  # the server runs the default [nlp]
        "transcripts": [
            {"clip": c.clip.id, "reference": ref, "hypothesis": hyp}
            for c, (ref, hyp) in zip([c for call in calls for c in call.clips], pairs, strict=True)
        ],
    }


async def keep_uploading(port: int, recording: Path, stats: dict) -> None:
    """Upload the recording, wait for its result, repeat: post-call work running beside the calls."""
    data = recording.read_bytes()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
        while True:
            started = time.monotonic()
            async with session.post(
                "/v1/recordings", data=io.BytesIO(data), headers={"Content-Type": "audio/wav"}
            ) as r:
                job_id = (await r.json())["id"]
            while True:
                await asyncio.sleep(0.5)
                async with session.get(f"/v1/recordings/{job_id}") as r:
                    body = await r.json()
                if body["status"] in ("done", "failed"):
                    break
            stats["uploads_done"] = stats.get("uploads_done", 0) + 1
            stats["upload_audio_s"] = stats.get("upload_audio_s", 0.0) + (body["result"] or {}).get("duration_s", 0)
            stats["upload_wall_s"] = stats.get("upload_wall_s", 0.0) + time.monotonic() - started


async def run_level(server: ServerProcess, n_calls: int, args: argparse.Namespace) -> dict:
    calls = plan_calls(n_calls, args.clips_per_call, args.gap_s, seed=args.seed + n_calls, language=args.language)
    by_id = {str(c.call_id): c for c in calls}
    done, ended = asyncio.Event(), set()
    listener = asyncio.create_task(subscribe(f"http://127.0.0.1:{server.http_port}/v1/events", by_id, done, ended))
    await asyncio.sleep(0.3)
    metrics_before = await scrape_metrics(server.http_port)
    cpu_before, started = server.cpu_seconds(), time.monotonic()
    rss_peak = server.rss_mb()
    upload_stats: dict = {}
    uploader = asyncio.create_task(keep_uploading(server.http_port, args.upload, upload_stats)) if args.upload else None
    players = asyncio.gather(*(run_call(c, server.audiosocket_port) for c in calls))
    while not players.done():
        rss_peak = max(rss_peak, server.rss_mb())
        await asyncio.sleep(0.5)
    await players
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    except TimeoutError:
        print(f"warning: {len(by_id) - len(ended)} calls did not end", file=sys.stderr)
    cpu_s, wall_s = server.cpu_seconds() - cpu_before, time.monotonic() - started
    listener.cancel()
    if uploader is not None:
        uploader.cancel()
        await asyncio.gather(uploader, return_exceptions=True)
    result = summarise(n_calls, calls, cpu_s, wall_s, max(rss_peak, server.rss_mb()))
    result.update(executor_summary(metrics_before, await scrape_metrics(server.http_port), wall_s))
    result.update(upload_stats)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--clips-per-call", type=int, default=6)
    parser.add_argument("--gap-s", type=float, default=1.5, help="silence between clips")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--language", default="en", help="the clips' language (en, sw, ...); WER is against theirs")
    parser.add_argument("--config", default="", help="extra TOML lines for the [asr] table")
    parser.add_argument("--offline", action="store_true", help="also decode every played clip whole, offline")
    parser.add_argument("--server-log", type=Path, help="keep the server's info-level JSON log here")
    parser.add_argument("--upload", type=Path, help="keep uploading this recording while the calls run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    server = ServerProcess(args.model, args.config.replace("\\n", "\n"), args.server_log)
    results = []
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait_ready(session)
        for n in args.calls:
            result = await run_level(server, n, args)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "transcripts"}), flush=True)
    finally:
        server.stop()
    if args.offline:
        played = [english_clips_by_id[t["clip"]] for r in results for t in r["transcripts"]]
        offline = offline_transcripts(args.model, played)
        for result in results:
            pairs = [(t["reference"], offline[t["clip"]]) for t in result["transcripts"]]
            result["offline_wer_same_clips"] = round(corpus_wer(pairs), 4)
            print(
                json.dumps(
                    {
                        "calls": result["calls"],
                        "wer": result["wer"],
                        "offline_wer_same_clips": result["offline_wer_same_clips"],
                    }
                ),
                flush=True,
            )
    holding = [r["calls"] for r in results if r["final_latency_p95_s"] is not None and r["final_latency_p95_s"] <= 1.5]
    summary = {
        "model": args.model,
        "config": args.config,
        "levels": results,
        "largest_n_with_p95_le_1_5_s": max(holding, default=0),
    }
    print(json.dumps({"largest_n_with_p95_le_1_5_s": summary["largest_n_with_p95_le_1_5_s"]}))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
