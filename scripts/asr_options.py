"""Measure ways of serving many live calls with one CPU Whisper model: WER, throughput and per-call latency."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2
import numpy as np
import soxr
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from callstream.audiosocket.player import read_wav_pcm
from callstream.evaluation.speech import english_clips
from callstream.evaluation.wer import corpus_wer, normalise
from callstream.models import resolve_whisper

SR = 16000
FRAMES_PER_S = 100  # Whisper log-mel frames per second
TS_STEP = 0.02  # seconds per Whisper timestamp token
MAX_TOKENS = 224  # CTranslate2 Whisper emits at most max_length // 2 new tokens; 448 // 2
SHORT_S = 8.0  # clips up to this long are "utterance sized" (what a VAD hands the live server)

DEFAULT_OPTIONS = (  # the base sweep reported in docs/asr-options.md
    "offline-b5,offline-b1,win30-b1,win30-b5,win20-b1,win15-b1,win10-b1,adapt-b1,adapt-b1-min10-fb,win10-b5,"
    "win10-b1-B2,win10-b1-B4,win10-b1-B8,win10-b1-B16,win30-b1-B4,win30-b1-B16,pack30-b1,pack20-b1,"
    "win10-b1-t1,win10-b1-B4-t1"
)

OPTIONS_HELP = """Option grammar: parts joined by '-'.
  kind:  offline            faster-whisper transcribe() per clip (30 s padding, temperature fallback)
         win<W>             each clip padded to a fixed W-second encoder window, direct generate()
         adapt              window = clip length + >=1 s silence, rounded up to 2 s (min 4 s, see min<S>)
         pack<W>            several clips concatenated into one W-second window with 0.5 s gaps,
                            decoded with timestamps and split back per clip
         live<R>            real-time load test: Poisson arrivals at R utterances/s of clips <= 8 s,
                            served by adapt windows in dynamic batches (latency = finish - arrival)
  flags: b<N> beam size (default 1)     B<N> max batch size (default 1)     t<N> cpu threads (default 2)
         min<S> adaptive minimum window  nocap: max_length 448 instead of the duration token cap
         nr<N> no_repeat_ngram_size     n<N> utterances in a live run (default 120)
         fb: guard - re-decode a suspect result (token cap hit, gzip ratio > 2.4, > 5 words/s) in a 30 s window
Examples: win30-b5  adapt-b1-B8  pack20-b1  live3.5-b1-B8  adapt-b1-t1  win6-b1-nocap"""


# ----------------------------------------------------------------------------- data


@dataclass
class Clip:
    id: str
    source: str  # speaker prefix, e.g. "arctic", "kathleen"
    duration: float
    audio: np.ndarray  # 16 kHz float32, from the 8 kHz telephone-band file
    ref: str


@dataclass
class Segment:
    """What one decoder item sees: a whole clip, or a piece of a clip longer than the window allows."""

    clip: int
    part: int
    audio: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.audio) / SR


def load_clips(limit: int | None = None) -> list[Clip]:
    """All English, non-call rows with a transcript, in manifest order; 8 kHz audio resampled to 16 kHz."""
    clips = []
    for row in english_clips():
        pcm, rate = read_wav_pcm(row.path_8k)
        audio = soxr.resample(np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, rate, SR)
        audio = np.clip(audio.astype(np.float32), -1, 1)
        clips.append(Clip(row.id, row.speaker.split("_")[0], len(audio) / SR, audio, row.transcript))
    return clips[:limit] if limit else clips


def split_long(audio: np.ndarray, max_s: float) -> list[np.ndarray]:
    """Cut audio longer than max_s at the quietest 100 ms in the last 40% of each piece (a stand-in for VAD cuts)."""
    pieces, max_n = [], int(max_s * SR)
    hop, win = SR // 50, SR // 10
    while len(audio) > max_n:
        lo = int(0.6 * max_n)
        energies = [float(np.mean(audio[i : i + win] ** 2)) for i in range(lo, max_n - win, hop)]
        cut = lo + hop * int(np.argmin(energies)) + win // 2
        pieces.append(audio[:cut])
        audio = audio[cut:]
    pieces.append(audio)
    return pieces


# ----------------------------------------------------------------------------- model


def token_cap(speech_s: float) -> int:
    """New-token budget for speech_s seconds of speech.

    References here peak at 8.5 tokens/s (on 1-2 s clips) and never exceed 5/s + 7, so 6/s + 10 leaves a margin.
    """
    return min(MAX_TOKENS, math.ceil(6 * speech_s) + 10)


def adaptive_window(duration: float, min_window: float) -> int:
    """Clip length plus at least 1 s of silence, rounded up to an even number of seconds, within [min_window, 30]."""
    return int(min(30, max(min_window, 2 * math.ceil((duration + 1.0) / 2))))


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def suspect(text: str, n_tokens: int, cap: int, speech_s: float) -> bool:
    """Cheap runaway/hallucination test: hit the token cap, repetitive (gzip), or more words than anyone says."""
    return n_tokens >= cap or compression_ratio(text) > 2.4 or len(normalise(text)) > 5 * speech_s + 3


class Engine:
    """One faster-whisper model plus the raw CTranslate2 calls used by the direct options."""

    def __init__(self, name: str, threads: int):
        self.name, self.threads = name, threads
        self.whisper = WhisperModel(resolve_whisper(name), device="cpu", compute_type="int8", cpu_threads=threads)
        tok = Tokenizer(self.whisper.hf_tokenizer, self.whisper.model.is_multilingual, task="transcribe", language="en")
        self.tokenizer = tok
        self.prompt_plain = [*tok.sot_sequence, tok.no_timestamps]
        self.prompt_timestamps = list(tok.sot_sequence)
        self.ts_begin = tok.timestamp_begin
        self.generate([np.zeros(SR, np.float32)], window_s=10, beam=1, cap=8)  # warm-up

    def features(self, audios: list[np.ndarray], window_s: float) -> np.ndarray:
        """[B, 80, window_s * 100] log-mel features of each audio zero-padded to window_s seconds."""
        n = int(window_s * SR)
        out = []
        for audio in audios:
            padded = np.zeros(n, np.float32)
            padded[: min(n, len(audio))] = audio[:n]
            out.append(self.whisper.feature_extractor(padded)[:, : int(window_s * FRAMES_PER_S)])
        return np.ascontiguousarray(np.stack(out))

    def generate(self, audios, window_s, beam, cap, timestamps=False, no_repeat_ngram=0):
        feats = ctranslate2.StorageView.from_array(self.features(audios, window_s))
        prompt = self.prompt_timestamps if timestamps else self.prompt_plain
        return self.whisper.model.generate(
            feats,
            [prompt] * len(audios),
            beam_size=beam,
            max_length=2 * cap,  # CTranslate2's Whisper decodes at most max_length // 2 new tokens
            return_no_speech_prob=True,
            suppress_blank=True,
            no_repeat_ngram_size=no_repeat_ngram,
        )

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.ts_begin]).strip()


# ----------------------------------------------------------------------------- options


@dataclass
class Option:
    name: str
    kind: str  # offline | win | adapt | pack | live
    window: float = 30
    beam: int = 1
    batch: int = 1
    threads: int = 2
    min_window: float = 4
    cap: bool = True
    no_repeat_ngram: int = 0
    fallback: bool = False
    rate: float = 0.0
    n_live: int = 120


def parse_option(name: str) -> Option:
    head, *flags = name.split("-")
    if head == "offline":
        opt = Option(name, "offline", beam=5)
    elif head == "adapt":
        opt = Option(name, "adapt")
    elif m := re.fullmatch(r"(win|pack)(\d+(?:\.\d+)?)", head):
        opt = Option(name, m[1], window=float(m[2]))
    elif m := re.fullmatch(r"live(\d+(?:\.\d+)?)", head):
        opt = Option(name, "live", rate=float(m[1]), batch=8)
    else:
        raise SystemExit(f"unknown option {name!r}\n{OPTIONS_HELP}")
    for flag in flags:
        if flag == "nocap":
            opt.cap = False
        elif flag == "fb":
            opt.fallback = True
        elif m := re.fullmatch(r"(b|B|t|min|nr|n)(\d+(?:\.\d+)?)", flag):
            attr = {
                "b": "beam",
                "B": "batch",
                "t": "threads",
                "min": "min_window",
                "nr": "no_repeat_ngram",
                "n": "n_live",
            }[m[1]]
            setattr(opt, attr, float(m[2]) if attr == "min_window" else int(float(m[2])))
        else:
            raise SystemExit(f"unknown flag {flag!r} in {name!r}\n{OPTIONS_HELP}")
    return opt


@dataclass
class Run:
    """Raw outcome of one option: hypothesis per clip, wall time per decoder call, and per-call latencies."""

    hyps: dict[int, list] = field(default_factory=lambda: defaultdict(list))  # (part, text) until reassembled
    call_walls: list[float] = field(default_factory=list)  # one per generate()/transcribe() call
    latencies: list[float] = field(default_factory=list)  # one per segment: what that caller waited
    hit_cap: int = 0
    fallbacks: int = 0
    extra: dict = field(default_factory=dict)


def segments_for(clips: list[Clip], max_s: float) -> list[Segment]:
    return [Segment(i, p, a) for i, c in enumerate(clips) for p, a in enumerate(split_long(c.audio, max_s))]


def arrival_order(items: list, seed: int = 0) -> list:
    """Live calls arrive in no particular order: shuffle so batches mix lengths and speakers."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def run_offline(engine: Engine, clips: list[Clip], opt: Option) -> Run:
    run = Run()
    for i, clip in enumerate(clips):
        t0 = time.perf_counter()
        segs, _ = engine.whisper.transcribe(
            clip.audio,
            language="en",
            beam_size=opt.beam,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        text = "".join(s.text for s in segs).strip()  # the generator does the work: time it fully
        wall = time.perf_counter() - t0
        run.hyps[i].append(text)
        run.call_walls.append(wall)
        run.latencies.append(wall)
    return run


def decode_batch(engine: Engine, audios: list[np.ndarray], window: float, opt: Option, run: Run) -> list[str]:
    """One generate() call for a batch of padded windows; with the fb flag, suspects are re-decoded in 30 s windows."""
    longest = max(len(a) for a in audios) / SR
    cap = token_cap(longest) if opt.cap else MAX_TOKENS
    results = engine.generate(audios, window, opt.beam, cap, no_repeat_ngram=opt.no_repeat_ngram)
    ids = [r.sequences_ids[0] for r in results]
    texts = [engine.text(i) for i in ids]
    run.hit_cap += sum(len(i) >= cap for i in ids)
    if opt.fallback and window < 30:
        redo = [k for k, a in enumerate(audios) if suspect(texts[k], len(ids[k]), cap, len(a) / SR)]
        if redo:
            run.fallbacks += len(redo)
            again = engine.generate([audios[k] for k in redo], 30, opt.beam, cap, no_repeat_ngram=opt.no_repeat_ngram)
            for k, r in zip(redo, again, strict=True):
                texts[k] = engine.text(r.sequences_ids[0])
    return texts


def run_windows(engine: Engine, clips: list[Clip], opt: Option) -> Run:
    """win<W> / adapt: one padded window per segment, up to B segments per generate() call."""
    run = Run()
    max_s = (opt.window if opt.kind == "win" else 30) - 1.0
    segs = arrival_order(segments_for(clips, max_s))
    for start in range(0, len(segs), opt.batch):
        batch = segs[start : start + opt.batch]
        longest = max(s.duration for s in batch)
        window = opt.window if opt.kind == "win" else adaptive_window(longest, opt.min_window)
        t0 = time.perf_counter()
        texts = decode_batch(engine, [s.audio for s in batch], window, opt, run)
        wall = time.perf_counter() - t0
        run.call_walls.append(wall)
        for seg, text in zip(batch, texts, strict=True):
            run.hyps[seg.clip].append((seg.part, text))
            run.latencies.append(wall)
    for i in run.hyps:  # reassemble pieces of long clips in order
        run.hyps[i] = [t for _, t in sorted(run.hyps[i])]
    return run


def split_by_timestamps(engine: Engine, ids: list[int], spans: list[tuple[float, float]]):
    """Assign each timestamped Whisper segment to the packed clip it overlaps most.

    Returns (texts per span, number of Whisper segments that straddled two clips).
    """
    pieces, start, tokens = [], None, []
    for tok in ids:
        if tok >= engine.ts_begin:
            t = (tok - engine.ts_begin) * TS_STEP
            if start is None:
                start = t
            else:
                pieces.append((start, t, tokens))
                start, tokens = None, []
        else:
            tokens.append(tok)
    if tokens:  # text after an unclosed timestamp: runs to the end of the window
        pieces.append((start or 0.0, spans[-1][1] + 1.0, tokens))
    texts, straddled = [[] for _ in spans], 0
    for s, e, toks in pieces:
        overlaps = [max(0.0, min(e, b + 0.25) - max(s, a - 0.25)) for a, b in spans]
        if sum(max(0.0, min(e, b) - max(s, a)) > 0.3 for a, b in spans) > 1:
            straddled += 1
        if max(overlaps) > 0:
            k = int(np.argmax(overlaps))
        else:
            mid = (s + e) / 2
            k = int(np.argmin([abs(mid - (a + b) / 2) for a, b in spans]))
        texts[k].append(engine.text(toks))
    return [" ".join(t for t in ts if t) for ts in texts], straddled


def run_pack(engine: Engine, clips: list[Clip], opt: Option) -> Run:
    """pack<W>: concatenate segments (0.5 s silence between) into W-second windows, decode with timestamps, split."""
    run = Run()
    gap, lead = 0.5, 0.2
    segs = arrival_order(segments_for(clips, opt.window - 2 * gap))
    packs, current, offset = [], [], lead
    for seg in segs:
        if current and offset + seg.duration + gap > opt.window:
            packs.append(current)
            current, offset = [], lead
        current.append((offset, seg))
        offset += seg.duration + gap
    packs.append(current)
    straddled = 0
    for pack in packs:
        audio = np.zeros(int(opt.window * SR), np.float32)
        for off, seg in pack:
            audio[int(off * SR) : int(off * SR) + len(seg.audio)] = seg.audio
        speech = sum(seg.duration for _, seg in pack)
        cap = min(MAX_TOKENS, token_cap(speech) + 2 * len(pack)) if opt.cap else MAX_TOKENS
        t0 = time.perf_counter()
        res = engine.generate([audio], opt.window, opt.beam, cap, True, opt.no_repeat_ngram)[0]
        wall = time.perf_counter() - t0
        ids = res.sequences_ids[0]
        run.hit_cap += len(ids) >= cap
        texts, n = split_by_timestamps(engine, ids, [(off, off + seg.duration) for off, seg in pack])
        straddled += n
        run.call_walls.append(wall)
        for (_, seg), text in zip(pack, texts, strict=True):
            run.hyps[seg.clip].append((seg.part, text))
            run.latencies.append(wall)
    for i in run.hyps:
        run.hyps[i] = [t for _, t in sorted(run.hyps[i])]
    run.extra = {"windows": len(packs), "clips_per_window": round(len(segs) / len(packs), 2), "straddled": straddled}
    return run


def run_live(engine: Engine, clips: list[Clip], opt: Option) -> Run:
    """Real-time load test: utterances (clips <= 8 s) finish speaking at Poisson times; the server repeatedly takes
    up to B waiting utterances, decodes them as one adapt-window batch, and records finish - end-of-speech."""
    run = Run()
    rng = random.Random(1)
    pool = [i for i, c in enumerate(clips) if c.duration <= SHORT_S]
    order = [pool[k % len(pool)] for k in range(opt.n_live)]
    rng.shuffle(order)
    arrivals = np.cumsum([rng.expovariate(opt.rate) for _ in order])
    done, t_start = 0, time.perf_counter()
    while done < len(order):
        now = time.perf_counter() - t_start
        if arrivals[done] > now:
            time.sleep(arrivals[done] - now)
            continue
        n_ready = int(np.searchsorted(arrivals, now, side="right")) - done
        batch = list(range(done, done + min(opt.batch, n_ready)))
        audios = [clips[order[k]].audio for k in batch]
        t0 = time.perf_counter()
        window = adaptive_window(max(len(a) for a in audios) / SR, opt.min_window)
        texts = decode_batch(engine, audios, window, opt, run)
        t1 = time.perf_counter()
        run.call_walls.append(t1 - t0)
        for k, text in zip(batch, texts, strict=True):
            run.hyps[order[k]] = [text]  # repeats of a clip overwrite: same audio, same text
            run.latencies.append(t1 - t_start - arrivals[k])
        done += len(batch)
    elapsed = time.perf_counter() - t_start
    run.extra = {
        "utterances": len(order),
        "offered_audio_s_per_s": round(sum(clips[i].duration for i in order) / elapsed, 2),
        "mean_batch": round(len(order) / len(run.call_walls), 2),
        "busy_fraction": round(sum(run.call_walls) / elapsed, 2),
        "latency_max_s": round(max(run.latencies), 3),
    }
    return run


RUNNERS = {"offline": run_offline, "win": run_windows, "adapt": run_windows, "pack": run_pack, "live": run_live}


# ----------------------------------------------------------------------------- scoring


def summarise(opt: Option, clips: list[Clip], run: Run) -> dict:
    idx = sorted(run.hyps)
    hyp = {i: " ".join(t for t in run.hyps[i] if t).strip() for i in idx}
    pairs = [(clips[i].ref, hyp[i]) for i in idx]
    by_source = defaultdict(list)
    for i in idx:
        by_source[clips[i].source].append((clips[i].ref, hyp[i]))
    short = [(clips[i].ref, hyp[i]) for i in idx if clips[i].duration <= SHORT_S]
    runaway = sum(
        compression_ratio(hyp[i]) > 2.4 or len(normalise(hyp[i])) > 2 * len(normalise(clips[i].ref)) + 4 for i in idx
    )
    audio_s = sum(clips[i].duration for i in idx) if opt.kind != "live" else None
    compute_s = sum(run.call_walls)
    lat = np.array(run.latencies)
    out = {
        "option": opt.name,
        "clips": len(idx),
        "wer": round(corpus_wer(pairs), 4),
        "wer_short": round(corpus_wer(short), 4) if short else None,
        "wer_by_source": {s: round(corpus_wer(p), 3) for s, p in sorted(by_source.items())},
        "calls": len(run.call_walls),
        "compute_s": round(compute_s, 2),
        "throughput": round(audio_s / compute_s, 2) if audio_s else None,
        "call_wall_mean_s": round(float(np.mean(run.call_walls)), 3),
        "call_wall_p95_s": round(float(np.percentile(run.call_walls, 95)), 3),
        "latency_mean_s": round(float(lat.mean()), 3),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3),
        "hit_token_cap": run.hit_cap,
        "fallbacks": run.fallbacks,
        "runaway_or_long": int(runaway),
        "empty": sum(not hyp[i] for i in idx),
        **run.extra,
        "hyps": {clips[i].id: hyp[i] for i in idx},
    }
    return out


def table_row(s: dict) -> str:
    thr = s["throughput"] if s["throughput"] is not None else f"{s.get('offered_audio_s_per_s')} offered"
    return (
        f"| {s['option']} | {s['wer']:.3f} | {s['wer_short']:.3f} | {s['compute_s']:.1f} | {thr} | "
        f"{s['latency_mean_s']:.2f} | {s['latency_p95_s']:.2f} | {s['hit_token_cap']} | {s['runaway_or_long']} | "
        f"{s['empty']} | {s['fallbacks']} |"
    )


def machine() -> dict:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ctranslate2": ctranslate2.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=OPTIONS_HELP, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", default="base", help="Whisper name for resolve_whisper: base (default) or tiny.en")
    parser.add_argument("--options", default=DEFAULT_OPTIONS, help="comma-separated option names (see below)")
    parser.add_argument("--limit", type=int, help="use only the first N clips (smoke test)")
    parser.add_argument("--out", type=Path, help="write the full results (with hypotheses) as JSON here")
    args = parser.parse_args()

    options = [parse_option(name) for name in args.options.split(",") if name]
    clips = load_clips(args.limit)
    print(f"{len(clips)} clips, {sum(c.duration for c in clips):.1f} s of audio, model {args.model}", flush=True)
    engines: dict[int, Engine] = {}
    results = []
    print(
        "| option | WER | WER<=8s | compute s | audio s / compute s | mean latency s | p95 latency s "
        "| cap hits | runaway | empty | fallbacks |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for opt in options:
        if opt.threads not in engines:
            engines[opt.threads] = Engine(args.model, opt.threads)
        run = RUNNERS[opt.kind](engines[opt.threads], clips, opt)
        summary = summarise(opt, clips, run)
        results.append(summary)
        print(table_row(summary), flush=True)
        if args.out:  # write as we go: a long run that is cut off still leaves its numbers
            args.out.parent.mkdir(parents=True, exist_ok=True)
            payload = {
                "model": args.model,
                "machine": machine(),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "argv": sys.argv,
                "results": results,
            }
            args.out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
