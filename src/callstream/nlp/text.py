"""Splitting transcripts into the sentences the NLP stages score."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
MIN_SENTENCE_CHARS = 2


def sentences(text: str) -> list[tuple[int, str]]:
    """(start offset, sentence) pairs; Whisper punctuates, so its full stops are trusted."""
    out = []
    offset = 0
    for part in _SENTENCE_END.split(text):
        start = text.index(part, offset)
        offset = start + len(part)
        if len(part.strip()) >= MIN_SENTENCE_CHARS:
            out.append((start, part.strip()))
    return out


_QUESTION_TO_CALLER = re.compile(
    r"^(?:(?:and|so|okay|ok|um|uh|now),?\s+)*(?:has|have|had|did|does|do|is|are|was|were|can|could|would|will|when|where|"
    r"who|how|why|what)\b.*\b(?:you|your|anyone|anybody|someone|somebody|he|she|they)\b.*\?$",
    re.IGNORECASE,
)


def is_question_to_caller(sentence: str) -> bool:
    """An agent's question ("has anyone hurt you?") mentions danger without stating it."""
    return bool(_QUESTION_TO_CALLER.match(sentence.strip()))


def may_raise_flag(leg: str, sentence: str) -> bool:
    """Only the caller's statements raise risk flags: never the agent, nor a question put to the
    caller. Live scoring and training both ask this, so they see the same sentences."""
    return leg != "agent" and not is_question_to_caller(sentence)
