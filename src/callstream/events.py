"""Events pushed to subscribers and stored: one msgspec tagged union, JSON on the wire."""

from __future__ import annotations

from typing import Literal

import msgspec

Leg = Literal["caller", "agent"]
EndReason = Literal["hangup", "error", "server", "shutdown"]


class Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=False):
    call_id: str
    seq: int = 0  # assigned by the call when published; increases by one per call


class CallStarted(Event, tag="call.started"):
    started_at: float  # unix seconds
    leg: Leg


class SegmentPartial(Event, tag="segment.partial"):
    start: float  # seconds from call start
    end: float
    text: str
    language: str
    leg: Leg


class SegmentFinal(Event, tag="segment.final"):
    start: float
    end: float
    text: str
    language: str
    leg: Leg


class Dtmf(Event, tag="dtmf"):
    digit: str
    at: float  # seconds from call start
    leg: Leg


class CallEnded(Event, tag="call.ended"):
    reason: EndReason
    duration: float  # seconds
    error: str | None = None


AnyEvent = CallStarted | SegmentPartial | SegmentFinal | Dtmf | CallEnded

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes | str) -> AnyEvent:
    return _decoder.decode(data)
