"""Offline results as files: the JSON shape the API and CLI share, plain text, SRT and WebVTT."""

from __future__ import annotations

import json
from typing import Any

from callstream.recordings.transcribe import OfflineResult

FORMATS = ("json", "text", "srt", "vtt")


def result_dict(file: str, result: OfflineResult, insights: dict[str, Any] | None = None) -> dict[str, Any]:
    segments = []
    for s in result.segments:
        seg: dict[str, Any] = {"start": s.start_s, "end": s.end_s, "text": s.text, "leg": s.leg}
        if s.language != result.language:
            seg["language"] = s.language
        if s.translation is not None:
            seg["translation"] = s.translation
        segments.append(seg)
    return {
        "file": file,
        "duration_s": round(result.duration_s, 3),
        "language": result.language,
        "segments": segments,
        "insights": insights,  # the NLP engine's findings, in the live `insights` event's shape
    }


def render(fmt: str, file: str, result: OfflineResult, insights: dict[str, Any] | None = None) -> str:
    if fmt == "json":
        return json.dumps(result_dict(file, result, insights), ensure_ascii=False, indent=1) + "\n"
    if fmt == "text":
        return "".join(
            f"{_speaker(result, s.leg)}{_with_translation(s.text, s.translation)}\n" for s in result.segments
        )
    cues = []
    for i, s in enumerate(result.segments, 1):
        span = f"{_clock(s.start_s, fmt)} --> {_clock(s.end_s, fmt)}"
        text = f"{_speaker(result, s.leg)}{_with_translation(s.text, s.translation, sep=chr(10))}"
        cues.append(f"{i}\n{span}\n{text}\n" if fmt == "srt" else f"{span}\n{text}\n")
    header = "WEBVTT\n\n" if fmt == "vtt" else ""
    return header + "\n".join(cues)


def _speaker(result: OfflineResult, leg: str) -> str:
    # Only name the leg when there is more than one: a mono recording is one voice track.
    return f"{leg}: " if len({s.leg for s in result.segments}) > 1 else ""


def _with_translation(text: str, translation: str | None, sep: str = " ") -> str:
    return f"{text}{sep}[en] {translation}" if translation else text


def _clock(seconds: float, fmt: str) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if fmt == 'srt' else '.'}{ms:03d}"
