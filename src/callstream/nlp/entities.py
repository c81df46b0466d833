"""Entities helplines record: spaCy's NER plus rules for what it misses in spoken text.

spaCy's small English model reads "0712 345 678" and "12 years old" as DATE and most East
African names as places, so phone numbers, ages and schools come from rules, and spaCy's
labels are only trusted where the rules say nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENTITY_LABELS = ("PERSON", "AGE", "PLACE", "PHONE", "DATE", "SCHOOL", "ORG")

_UNITS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_NUMBER_WORD = rf"(?:(?:{_TENS})(?:[- ](?:{_UNITS}))?|{_TEENS}|{_UNITS})"
_AGE_NUMBER = rf"(?:\d{{1,2}}|{_NUMBER_WORD})"
_SW_UNITS = "moja|mbili|tatu|nne|tano|sita|saba|nane|tisa"
_SW_NUMBER = rf"(?:kumi(?: na (?:{_SW_UNITS}))?|ishirini(?: na (?:{_SW_UNITS}))?|{_SW_UNITS}|\d{{1,2}})"

AGE_PATTERNS = [
    re.compile(rf"\b{_AGE_NUMBER}[- ](?:years?|yrs?|months?)[- ]old\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE_NUMBER}[- ]year[- ]old\b", re.IGNORECASE),
    re.compile(rf"\baged? (?:of )?{_AGE_NUMBER}\b", re.IGNORECASE),
    re.compile(rf"\bmiaka {_SW_NUMBER}\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE_NUMBER} years\b(?= (?:and|but|,|\.|of age))", re.IGNORECASE),
]
# "she is nine", "I'm 14": a bare number after a person and a copula, not a time or a sum.
BARE_AGE = re.compile(
    rf"\b(?:i am|i'm|im|she is|she's|he is|he's|is only|only|just turned|turned|they are|they're)\s+(?:only\s+)?"
    rf"(?P<age>{_AGE_NUMBER})\b(?!\s*(?:o'clock|am\b|pm\b|:|%|percent|shillings|bob|minutes|hours|km|kilomet|times|"
    r"of|people|children|kids|days|weeks|years? (?:ago|since)))",
    re.IGNORECASE,
)
PHONE_DIGITS = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s-]?)?\(?\d{2,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\w)")
_DIGIT_WORD = rf"(?:{_UNITS}|double (?:{_UNITS})|triple (?:{_UNITS}))"
PHONE_WORDS = re.compile(rf"\b{_DIGIT_WORD}(?:[\s,.-]+{_DIGIT_WORD}){{6,}}\b", re.IGNORECASE)
SCHOOL = re.compile(
    r"\b(?:St\.? |Saint )?(?:[A-Z][\w'’-]+ ){1,4}"
    r"(?:Primary|Secondary|High|Girls'?|Boys'?|Mixed|Day|Junior|Comprehensive|Academy|Preparatory|Prep)"
    r"(?: (?:and|&) \w+)?(?: (?:School|Academy|Secondary|Primary))*\b"
)
PERSON_CUES = re.compile(
    r"\b(?:my name is|name is|i am called|i'm called|called|named|naitwa|jina langu ni|this is|i am|i'm|her name is|"
    r"his name is)\s+(?P<name>[A-Z][a-z'’]+(?: [A-Z][a-z'’]+)?)"
)
PLACE_CUES = re.compile(
    r"\b(?:in|at|near|from|behind|around|opposite|outside|to|of|kwa|huko|karibu na)\s+(?:the\s+)?"
    r"(?P<place>[A-Z][\w'’-]+(?: [A-Z][\w'’-]+){0,2}"
    r"(?: (?:market|stage|estate|village|town|road|street|station|centre|center|hospital|mall|church|mosque|"
    r"bridge|river|county|district|area|slum|ward|location|primary))?)"
)
LANDMARK = re.compile(
    r"\b(?P<place>(?:[A-Z][\w'’-]+ ){1,3}(?:market|stage|estate|petrol station|police station|hospital|health centre|"
    r"dispensary|mall|church|mosque|bridge|bus stop|roundabout|river|primary|county|village|road|street|slum))\b"
)
# Capitalised words that start spoken sentences or name relations, never names.
_NOT_NAMES_TEXT = """
I Im Hello Hi Yes No Okay Ok Please Thank Thanks Sorry Madam Sir Mum Mom Dad Mama Baba Teacher God Jesus
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
September October November December English Swahili Kiswahili Christmas Easter The This That And But So Um Uh
Childline Helpline Police Mr Mrs Ms Dr Aunty Auntie Uncle Grandma Grandpa Bibi Shosho Guka Sasa Asante Habari
Pole Sawa Ndio Hapana Nataka Niko Mimi Yeye Wewe Sisi Not Now Then When Where What Why How Who Also Because
Our My Your His Her Their We They He She It Is Are Was Were Just Very Really Can Could Would Should Will
"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
RELATIVE_DATES = frozenset(
    {"yesterday", "today", "tomorrow", "tonight", "now", "this morning", "last night", "recently"}
)


@dataclass(frozen=True, slots=True)
class Entity:
    label: str
    text: str
    start_char: int
    end_char: int


def _overlaps(a: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a[0] < end and start < a[1] for start, end in taken)


class EntityExtractor:
    """Not thread-safe (spaCy pipelines are used from one thread)."""

    def __init__(self, nlp) -> None:  # a loaded spaCy Language
        self._nlp = nlp

    def extract(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(label: str, start: int, end: int) -> None:
            span_text = text[start:end].strip(" ,.;:!?")
            if not span_text:
                return
            start = text.index(span_text, start)
            end = start + len(span_text)
            if not _overlaps((start, end), taken):
                found.append(Entity(label, span_text, start, end))
                taken.append((start, end))

        for pattern in (PHONE_WORDS, PHONE_DIGITS):
            for m in pattern.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) >= 9 or pattern is PHONE_WORDS:
                    add("PHONE", m.start(), m.end())
        for pattern in AGE_PATTERNS:
            for m in pattern.finditer(text):
                add("AGE", m.start(), m.end())
        for m in BARE_AGE.finditer(text):
            add("AGE", m.start("age"), m.end("age"))
        for m in SCHOOL.finditer(text):
            add("SCHOOL", m.start(), m.end())
        for m in LANDMARK.finditer(text):
            if m.group("place").split()[0] not in NOT_NAMES:
                add("PLACE", m.start("place"), m.end("place"))
        for m in PERSON_CUES.finditer(text):
            if m.group("name").split()[0] not in NOT_NAMES:
                add("PERSON", m.start("name"), m.end("name"))
        self._add_spacy(text, add)
        for m in PLACE_CUES.finditer(text):
            place = m.group("place")
            if place.split()[0] not in NOT_NAMES and not _overlaps((m.start("place"), m.end("place")), taken):
                add("PLACE", m.start("place"), m.end("place"))
        return sorted(found, key=lambda e: e.start_char)

    def _add_spacy(self, text: str, add) -> None:
        doc = self._nlp(text)
        for ent in doc.ents:
            label = _spacy_label(ent)
            if label is None:
                continue
            add(label, ent.start_char, ent.end_char)

    def names(self, text: str) -> list[Entity]:
        return [e for e in self.extract(text) if e.label == "PERSON"]


def _spacy_label(ent) -> str | None:
    text = ent.text.strip()
    first = text.split()[0] if text else ""
    if ent.label_ in ("PERSON", "GPE", "LOC", "FAC", "ORG") and not first[:1].isupper():
        return None  # spoken text is cased by the recogniser: a lower-case "name" is a Swahili word
    if ent.label_ == "PERSON":
        return "PERSON" if first not in NOT_NAMES else None
    if ent.label_ in ("GPE", "LOC", "FAC"):
        return "PLACE" if first not in NOT_NAMES or first == "The" else None
    if ent.label_ == "DATE":
        if text.lower() in RELATIVE_DATES or (any(ch.isdigit() for ch in text) and "year" in text.lower()):
            return None
        return "DATE"
    if ent.label_ == "ORG":
        return "ORG" if first not in NOT_NAMES else None
    return None
