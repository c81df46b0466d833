"""Play audio into an AudioSocket listener the way Asterisk does: recorded captures or WAV files, at real pace."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from callstream.audiosocket.protocol import AUDIO_RATES_HZ, HEADER_BYTES, encode, encode_uuid

FRAME_MS = 20
RATE_KINDS = {rate: kind for kind, rate in AUDIO_RATES_HZ.items()}


@dataclass(frozen=True, slots=True)
class TimedMessage:
    at_s: float  # when to send, from connection start
    data: bytes  # one whole encoded message


def capture_messages(bin_path: Path, tsv_path: Path) -> list[TimedMessage]:
    """A byte-exact recording of real Asterisk traffic, each message paired with its arrival time."""
    data = bin_path.read_bytes()
    messages = []
    offset = 0
    for line in tsv_path.read_text().splitlines():
        t_us, _, length, *_ = line.split("\t")
        size = HEADER_BYTES + int(length)
        messages.append(TimedMessage(int(t_us) / 1e6, data[offset : offset + size]))
        offset += size
    if offset != len(data):
        raise ValueError(f"{tsv_path} accounts for {offset} of {len(data)} bytes")
    return messages


def read_wav_pcm(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono WAV")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def pcm_messages(pcm: bytes, rate_hz: int, start_s: float = 0.0) -> Iterator[TimedMessage]:
    """20 ms audio frames as Asterisk sends them, the last one short."""
    kind = RATE_KINDS[rate_hz]
    frame_bytes = rate_hz * FRAME_MS // 1000 * 2
    for i, offset in enumerate(range(0, len(pcm), frame_bytes)):
        yield TimedMessage(start_s + i * FRAME_MS / 1000, encode(kind, pcm[offset : offset + frame_bytes]))


def call_messages(call_id: uuid.UUID, pcm: bytes, rate_hz: int, first_audio_delay_s: float = 0.5) -> list[TimedMessage]:
    return [TimedMessage(0.0, encode_uuid(call_id)), *pcm_messages(pcm, rate_hz, first_audio_delay_s)]


async def send_paced(writer: asyncio.StreamWriter, messages: list[TimedMessage], speed: float = 1.0) -> float:
    """Send each message at its time (divided by speed), one write per message as Asterisk does.

    Returns the worst lateness in seconds, so a load generator can tell when it fell behind.
    """
    started = time.monotonic()
    worst_late_s = 0.0
    for message in messages:
        due = started + message.at_s / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(message.data)
        await writer.drain()
        worst_late_s = max(worst_late_s, time.monotonic() - due)
    return worst_late_s


async def play(host: str, port: int, messages: list[TimedMessage], *, speed: float = 1.0) -> float:
    """Connect, send the messages at their pace, then close: EOF is how Asterisk ends a call."""
    _, writer = await asyncio.open_connection(host, port)
    try:
        return await send_paced(writer, messages, speed)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
