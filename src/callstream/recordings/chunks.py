"""Whole-file VAD and packing of its speech into Whisper windows: pure functions over arrays, in samples."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import soxr

from callstream.vad.model import CHUNK_AT_RATE, CHUNK_SAMPLES, SileroVad, VadState, vad_rate_for
from callstream.vad.tracker import TrackerConfig, UtteranceEnded, VadTracker

RATE_HZ = 16_000
STREAM_STEPS = 938  # ~30 s per VAD stream: the file is cut into streams run side by side as one batch
WARMUP_STEPS = 16  # ~0.5 s of audio before each stream's start, to settle Silero's state
MAX_STREAMS = 64

# Offline regions: generous rolls (no latency to save) so word edges survive; no length cap here.
OFFLINE_TRACKER = TrackerConfig(
    threshold=0.5,
    negative_threshold=0.35,
    min_silence_samples=4_800,
    min_speech_samples=4_000,
    pre_roll_samples=3_200,
    post_roll_samples=3_200,
    max_utterance_samples=2**62,
)


@dataclass(frozen=True, slots=True)
class Piece:
    window_sample: int  # where this piece starts inside the window
    source_sample: int  # where it starts in the channel
    samples: int


@dataclass(frozen=True, slots=True)
class Window:
    channel: int
    pieces: tuple[Piece, ...]

    @property
    def samples(self) -> int:
        last = self.pieces[-1]
        return last.window_sample + last.samples

    @property
    def source_start(self) -> int:
        return self.pieces[0].source_sample

    def audio(self, channel_audio: np.ndarray) -> np.ndarray:
        out = np.zeros(self.samples, dtype=np.float32)
        for p in self.pieces:
            out[p.window_sample : p.window_sample + p.samples] = channel_audio[
                p.source_sample : p.source_sample + p.samples
            ]
        return out

    def to_source_s(self, window_s: float, *, is_end: bool) -> float:
        """A time inside the window mapped back to the channel; times in an inserted gap snap to speech."""
        sample = round(window_s * RATE_HZ)
        for i, p in enumerate(self.pieces):
            if sample < p.window_sample:  # in the gap before piece i
                prev = self.pieces[i - 1] if i else p
                return (prev.source_sample + prev.samples if is_end and i else p.source_sample) / RATE_HZ
            if sample <= p.window_sample + p.samples:
                return (p.source_sample + sample - p.window_sample) / RATE_HZ
        last = self.pieces[-1]
        return (last.source_sample + last.samples) / RATE_HZ

    def tail(self, from_window_s: float) -> Window | None:
        """The rest of this window after `from_window_s`, as a new window (for re-decoding what was cut off)."""
        cut = round(from_window_s * RATE_HZ)
        kept = [p for p in self.pieces if p.window_sample + p.samples > cut + CHUNK_SAMPLES]
        if not kept:
            return None
        skip = max(0, cut - kept[0].window_sample)
        origin = kept[0].window_sample + skip
        pieces = [Piece(0, kept[0].source_sample + skip, kept[0].samples - skip)]
        pieces += [Piece(p.window_sample - origin, p.source_sample, p.samples) for p in kept[1:]]
        return Window(self.channel, tuple(pieces))


def speech_probabilities(vad: SileroVad, audio: np.ndarray, source_rate_hz: int) -> np.ndarray:
    """One Silero probability per 32 ms step over the whole channel, many stretches batched at once."""
    rate = vad_rate_for(source_rate_hz)
    x = audio if rate == RATE_HZ else soxr.resample(audio, RATE_HZ, rate, quality="HQ").astype(np.float32)
    step = CHUNK_AT_RATE[rate]
    n_steps = math.ceil(len(audio) / CHUNK_SAMPLES)
    stream_steps = max(STREAM_STEPS, math.ceil(n_steps / MAX_STREAMS))
    n_streams = max(1, math.ceil(n_steps / stream_steps))
    frames = np.zeros(((n_streams * stream_steps) + WARMUP_STEPS, step), dtype=np.float32)
    usable = min(len(x) // step, n_steps)
    frames[WARMUP_STEPS : WARMUP_STEPS + usable] = x[: usable * step].reshape(usable, step)
    if usable < n_steps:  # the last, partial step
        rest = x[usable * step :]
        frames[WARMUP_STEPS + usable, : len(rest)] = rest
    states = [VadState(rate) for _ in range(n_streams)]
    probs = np.empty((n_streams, stream_steps), dtype=np.float32)
    starts = np.arange(n_streams) * stream_steps  # frame index of each stream's warm-up
    for k in range(WARMUP_STEPS + stream_steps):
        p = vad.run(frames[starts + k], states, rate)
        if k >= WARMUP_STEPS:
            probs[:, k - WARMUP_STEPS] = p
    return probs.reshape(-1)[:n_steps]


def speech_regions(probabilities: np.ndarray, config: TrackerConfig = OFFLINE_TRACKER) -> list[tuple[int, int]]:
    """(start, end) samples of speech, from the same state machine the live path uses."""
    tracker = VadTracker(config)
    regions = []
    for p in probabilities.tolist():
        regions += [(e.start_sample, e.end_sample) for e in tracker.feed(p) if isinstance(e, UtteranceEnded)]
    regions += [(e.start_sample, e.end_sample) for e in tracker.flush() if isinstance(e, UtteranceEnded)]
    return regions


def split_long(regions: list[tuple[int, int]], probabilities: np.ndarray, max_samples: int) -> list[tuple[int, int]]:
    """Regions longer than a window cut at their least speech-like step in the back half of the window."""
    out = []
    for start, end in regions:
        while end - start > max_samples:
            lo = (start + max_samples // 2) // CHUNK_SAMPLES
            hi = (start + max_samples) // CHUNK_SAMPLES
            cut = (lo + int(np.argmin(probabilities[lo:hi]))) * CHUNK_SAMPLES if hi > lo else start + max_samples
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out


def pack_windows(
    channel: int, regions: list[tuple[int, int]], *, window_samples: int, max_gap_samples: int
) -> list[Window]:
    """Consecutive speech regions packed into windows of at most `window_samples`, cut between regions.

    Silence between regions is shortened to `max_gap_samples` of the real audio: enough for Whisper to
    hear a pause, while a window carries as much speech as it can (fewer windows, less compute).
    """
    windows: list[Window] = []
    pieces: list[Piece] = []
    used = 0
    prev_end = 0
    for region_start, end in regions:
        start = max(region_start, prev_end)  # pre-roll may reach back into the previous region's post-roll
        if end <= start:
            continue
        gap = min(max_gap_samples, start - prev_end) if pieces else 0
        if pieces and used + gap + (end - start) > window_samples:
            windows.append(Window(channel, tuple(pieces)))
            pieces, used, gap = [], 0, 0
        # The kept gap is real audio just before this region (pre-roll already covers word onsets).
        pieces.append(Piece(used, start - gap, end - start + gap))
        used += gap + end - start
        prev_end = end
    if pieces:
        windows.append(Window(channel, tuple(pieces)))
    return _merge_touching(windows)


def _merge_touching(windows: list[Window]) -> list[Window]:
    merged = []
    for w in windows:
        pieces: list[Piece] = []
        for p in w.pieces:
            last = pieces[-1] if pieces else None
            if last and last.source_sample + last.samples == p.source_sample:
                pieces[-1] = Piece(last.window_sample, last.source_sample, last.samples + p.samples)
            else:
                pieces.append(p)
        merged.append(Window(w.channel, tuple(pieces)))
    return merged
