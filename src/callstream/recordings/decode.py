"""Recording upload -> per-channel 16 kHz float32: any container/codec FFmpeg knows, recognised by content."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soxr

TARGET_RATE_HZ = 16_000
# A header's duration is an estimate (VBR MP3 without a Xing header, OGG granule rounding).
DURATION_SLACK_S = 1.0
MAX_BAD_PACKETS = 50  # corrupt packets skipped before the whole file counts as corrupt


class AudioDecodeError(ValueError):
    """The upload cannot be used; str() is a message for the person who sent it."""


class AudioTooLong(AudioDecodeError):
    """Longer than the configured limit."""


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    channels: list[np.ndarray]  # float32 16 kHz mono per channel
    duration_s: float
    source_rate_hz: int
    source_channels: int
    codec: str
    container: str


class _Unnamed:
    """A file seen by FFmpeg without its name, so the format is probed from the bytes alone."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def _open_source(source: bytes | Path) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise AudioDecodeError("the file is empty")
        return io.BytesIO(source)
    try:
        f = Path(source).open("rb")  # noqa: SIM115 (the caller closes it with `with`)
    except OSError as exc:
        raise AudioDecodeError(f"cannot read {source}: {exc.strerror}") from exc
    if f.seek(0, io.SEEK_END) == 0:
        f.close()
        raise AudioDecodeError("the file is empty")
    f.seek(0)
    return f


def _open_container(f: BinaryIO) -> av.container.InputContainer:
    try:
        container = av.open(_Unnamed(f), mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioDecodeError("not a recognised audio file (unknown format or corrupt header)") from exc
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError(f"no audio stream in this {container.format.name} file")
    return container


def _header_duration_s(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


@dataclass(frozen=True, slots=True)
class AudioInfo:
    duration_s: float | None  # as the header claims; None when it does not say
    channels: int
    rate_hz: int
    codec: str
    container: str


def _check_header(
    container: av.container.InputContainer, stream: av.AudioStream, max_duration_s: float, max_channels: int
) -> float | None:
    """Refuse what the header already rules out; returns the duration it claims, if any."""
    channels = stream.codec_context.channels
    if channels > max_channels:
        raise AudioDecodeError(f"the audio has {channels} channels; at most {max_channels} are supported")
    claimed_s = _header_duration_s(container, stream)
    if claimed_s is not None and claimed_s > max_duration_s + DURATION_SLACK_S:
        raise AudioTooLong(_too_long(max_duration_s, claimed_s))
    return claimed_s


PROBE_DECODE_S = 2.0  # decoded at upload time, so a file that is not audio is refused at once


def inspect_audio(source: bytes | Path, *, max_duration_s: float, max_channels: int = 2) -> AudioInfo:
    """Check an upload quickly: a known format with an audio stream that decodes, within the limits.
    Corruption further into the file is found when the job decodes it (the job then fails with a reason)."""
    with _open_source(source) as f, _open_container(f) as container:
        stream = container.streams.audio[0]
        claimed_s = _check_header(container, stream, max_duration_s, max_channels)
        decoded = _decode_stream(container, stream, max_duration_s, stop_after_s=PROBE_DECODE_S)
        return AudioInfo(
            claimed_s, decoded.channel_count, decoded.rate_hz, stream.codec_context.name, container.format.name
        )


def decode_audio(source: bytes | Path, *, max_duration_s: float, max_channels: int = 2) -> DecodedAudio:
    with _open_source(source) as f, _open_container(f) as container:
        stream = container.streams.audio[0]
        _check_header(container, stream, max_duration_s, max_channels)
        decoded = _decode_stream(container, stream, max_duration_s)
        return DecodedAudio(
            channels=decoded.channels(),
            duration_s=decoded.source_samples / decoded.rate_hz,
            source_rate_hz=decoded.rate_hz,
            source_channels=decoded.channel_count,
            codec=stream.codec_context.name,
            container=container.format.name,
        )


def _too_long(max_duration_s: float, duration_s: float | None) -> str:
    limit = f"{max_duration_s / 60:.0f} min" if max_duration_s >= 120 else f"{max_duration_s:g} s"
    got = f" ({duration_s / 60:.1f} min)" if duration_s is not None else ""
    return f"the recording is longer than the limit of {limit}{got}"


class _Accumulator:
    """Decoded frames resampled to 16 kHz as they arrive, kept as per-channel chunk lists."""

    def __init__(self, rate_hz: int, channel_count: int, max_duration_s: float) -> None:
        self.rate_hz = rate_hz
        self.channel_count = channel_count
        self.source_samples = 0
        self._limit_samples = math.ceil((max_duration_s + DURATION_SLACK_S) * rate_hz)
        self._max_duration_s = max_duration_s
        self._resampler = (
            None
            if rate_hz == TARGET_RATE_HZ
            else soxr.ResampleStream(rate_hz, TARGET_RATE_HZ, channel_count, dtype="float32", quality="HQ")
        )
        self._chunks: list[list[np.ndarray]] = [[] for _ in range(channel_count)]

    def add(self, interleaved: np.ndarray, last: bool = False) -> None:
        frames = interleaved.reshape(-1, self.channel_count)
        self.source_samples += len(frames)
        if self.source_samples > self._limit_samples:
            raise AudioTooLong(_too_long(self._max_duration_s, None))
        if self._resampler is not None:
            frames = self._resampler.resample_chunk(frames, last=last)
        for ch in range(self.channel_count):
            self._chunks[ch].append(np.ascontiguousarray(frames[:, ch]))

    def channels(self) -> list[np.ndarray]:
        self.add(np.zeros((0, self.channel_count), dtype=np.float32), last=True)
        out = [np.concatenate(chunks) if chunks else np.zeros(0, np.float32) for chunks in self._chunks]
        self._chunks = []
        return out


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    max_duration_s: float,
    stop_after_s: float | None = None,
) -> _Accumulator:
    acc: _Accumulator | None = None
    resampler: av.AudioResampler | None = None
    bad_packets = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad_packets += 1
                if bad_packets > MAX_BAD_PACKETS:
                    raise
                continue
            for frame in frames:
                if acc is None:
                    # Fix the source rate and layout at the first frame; later changes are resampled to them.
                    acc = _Accumulator(frame.sample_rate, len(frame.layout.channels), max_duration_s)
                    resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate)
                assert resampler is not None
                for out in resampler.resample(frame):
                    acc.add(out.to_ndarray())
            if stop_after_s is not None and acc is not None and acc.source_samples >= stop_after_s * acc.rate_hz:
                return acc
        if resampler is not None and acc is not None:
            for out in resampler.resample(None):
                acc.add(out.to_ndarray())
    except av.FFmpegError as exc:
        raise AudioDecodeError(f"the audio data is corrupt ({exc.strerror or exc})") from exc
    except ValueError as exc:  # PyAV: a frame whose format changed in a way the resampler cannot follow
        if isinstance(exc, AudioDecodeError):
            raise
        raise AudioDecodeError(f"the audio data is inconsistent ({exc})") from exc
    if acc is None or acc.source_samples == 0:
        raise AudioDecodeError("no audio could be decoded from the file (corrupt or truncated)")
    return acc
