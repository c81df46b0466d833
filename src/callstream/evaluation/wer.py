"""Word error rate on normalised text, shared by tests and benchmark scripts."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHE_INSIDE_WORD = re.compile(r"(?<=\w)['’](?=\w)")


def normalise(text: str) -> list[str]:
    """NFKC, lower case, punctuation dropped except apostrophes inside words, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHE_INSIDE_WORD.sub("\u0000", text)
    text = "".join(ch if (ch.isalnum() or ch.isspace() or ch == "\u0000") else " " for ch in text)
    return text.replace("\u0000", "'").split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1]


def corpus_wer(pairs: list[tuple[str, str]]) -> float:
    """Pooled WER over (reference, hypothesis) pairs: total edits / total reference words."""
    edits = words = 0
    for ref, hyp in pairs:
        ref_words = normalise(ref)
        edits += edit_distance(ref_words, normalise(hyp))
        words += len(ref_words)
    return edits / max(words, 1)
