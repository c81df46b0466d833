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


class CategoryScore(msgspec.Struct, kw_only=True):
    id: str
    label: str
    score: float  # 0..1, the categories' scores sum to 1


class RiskFlag(msgspec.Struct, kw_only=True):
    id: str
    score: float  # 0..1; 0.9 for an explicit statement matched by a pattern
    evidence: str  # the sentence that raised the flag
    at: float  # seconds from call start


class EntityMention(msgspec.Struct, kw_only=True):
    label: str  # PERSON, AGE, PLACE, PHONE, DATE, SCHOOL, ORG
    text: str
    start: float  # seconds from call start: the segment it was said in
    end: float


class Insights(Event, tag="insights"):
    at: float  # seconds from call start when computed
    language: str | None
    categories: list[CategoryScore]
    subcategory: str | None
    priority: int  # 1 urgent .. 3
    risk_flags: list[RiskFlag]
    entities: list[EntityMention]
    summary: str
    translation: str | None = None  # English translation of non-English speech, when there is some
    final: bool = False  # true once the call has ended and every final segment is in
    segments: int = 0  # final segments taken into account


class Alert(Event, tag="alert"):
    """A risk flag raised for the first time in this call: pushed at once, not debounced."""

    flag: RiskFlag


class SegmentTranslated(Event, tag="segment.translated"):
    """The English translation of a non-English final segment (Whisper's translate task)."""

    start: float
    end: float
    leg: Leg
    text: str
    language: str  # of the original speech


class CallEnded(Event, tag="call.ended"):
    reason: EndReason
    duration: float  # seconds
    error: str | None = None


AnyEvent = CallStarted | SegmentPartial | SegmentFinal | SegmentTranslated | Dtmf | Insights | Alert | CallEnded

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes | str) -> AnyEvent:
    return _decoder.decode(data)
