"""Sans-IO AudioSocket codec: bytes in, typed messages out; the socket code only moves bytes."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

HEADER_BYTES = 3
# Asterisk's largest frame is a few KiB; anything near the 16-bit limit is a broken or hostile peer.
DEFAULT_MAX_PAYLOAD_BYTES = 16_384


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO_8K = 0x10
    AUDIO_12K = 0x11
    AUDIO_16K = 0x12
    AUDIO_24K = 0x13
    AUDIO_32K = 0x14
    AUDIO_44K = 0x15
    AUDIO_48K = 0x16
    AUDIO_96K = 0x17
    AUDIO_192K = 0x18
    ERROR = 0xFF


AUDIO_RATES_HZ = {
    Kind.AUDIO_8K: 8_000,
    Kind.AUDIO_12K: 12_000,
    Kind.AUDIO_16K: 16_000,
    Kind.AUDIO_24K: 24_000,
    Kind.AUDIO_32K: 32_000,
    Kind.AUDIO_44K: 44_100,
    Kind.AUDIO_48K: 48_000,
    Kind.AUDIO_96K: 96_000,
    Kind.AUDIO_192K: 192_000,
}


class ProtocolError(Exception):
    """The peer broke the protocol; the connection cannot continue."""


@dataclass(frozen=True, slots=True)
class CallId:
    value: uuid.UUID


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Audio:
    sample_rate_hz: int
    pcm: bytes  # signed 16-bit little-endian mono


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class PeerError:
    code: bytes


Message = CallId | Dtmf | Audio | Hangup | PeerError


class Decoder:
    """Incremental decoder; feed() any chunking of the stream, get whole messages back.

    Enforces the order real Asterisk uses: the UUID first and once, audio only after it.
    """

    def __init__(self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self._buffer = bytearray()
        self._max_payload_bytes = max_payload_bytes
        self._seen_uuid = False

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while len(self._buffer) >= HEADER_BYTES:
            kind_byte = self._buffer[0]
            length = int.from_bytes(self._buffer[1:3], "big")
            if length > self._max_payload_bytes:
                raise ProtocolError(f"payload of {length} bytes exceeds the {self._max_payload_bytes}-byte limit")
            kind = _parse_kind(kind_byte)
            if len(self._buffer) < HEADER_BYTES + length:
                break
            payload = bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])
            del self._buffer[: HEADER_BYTES + length]
            messages.append(self._message(kind, payload))
        return messages

    def close(self) -> None:
        """Call at EOF: a partial message left in the buffer means the stream was cut mid-frame."""
        if self._buffer:
            raise ProtocolError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")

    def _message(self, kind: Kind, payload: bytes) -> Message:
        if kind is Kind.UUID:
            if self._seen_uuid:
                raise ProtocolError("a second UUID message arrived on the same connection")
            if len(payload) != 16:
                raise ProtocolError(f"UUID payload must be 16 bytes, got {len(payload)}")
            self._seen_uuid = True
            return CallId(uuid.UUID(bytes=payload))
        if not self._seen_uuid:
            raise ProtocolError(f"{kind.name} message arrived before the call UUID")
        if kind in AUDIO_RATES_HZ:
            if len(payload) % 2:
                raise ProtocolError(f"audio payload of odd length {len(payload)} is not 16-bit PCM")
            return Audio(AUDIO_RATES_HZ[kind], payload)
        if kind is Kind.DTMF:
            if len(payload) != 1:
                raise ProtocolError(f"DTMF payload must be 1 byte, got {len(payload)}")
            return Dtmf(payload.decode("ascii", errors="replace"))
        if kind is Kind.HANGUP:
            return Hangup()
        return PeerError(payload)


def _parse_kind(kind_byte: int) -> Kind:
    try:
        return Kind(kind_byte)
    except ValueError:
        raise ProtocolError(f"unknown message kind 0x{kind_byte:02x}") from None


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError("payload longer than 65535 bytes")
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def encode_hangup() -> bytes:
    return encode(Kind.HANGUP)


def encode_uuid(call_id: uuid.UUID) -> bytes:
    return encode(Kind.UUID, call_id.bytes)
