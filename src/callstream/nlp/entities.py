"""Entities helplines record: spaCy's NER plus rules for what it misses in spoken text.

spaCy's small English model reads "0712 345 678" and "12 years old" as DATE and most East
African names as places, so phone numbers, ages and schools come from rules, and spaCy's
labels are only trusted where the rules say nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ENTITY_LABELS = ("PERSON", "AGE", "PLACE", "PHONE", "DATE", "SCHOOL", "ORG")

_UNITS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_TEENS = "ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
_TENS = "twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
_NUMBER_WORD = rf"(?:(?:{_TENS})(?:[- ](?:{_UNITS}))?|{_TEENS}|{_UNITS})"
_AGE_NUMBER = rf"(?:\d{{1,2}}|{_NUMBER_WORD})"
_SW_UNITS = "moja|mbili|tatu|nne|tano|sita|saba|nane|tisa"
_SW_NUMBER = rf"(?:kumi(?: na (?:{_SW_UNITS}))?|ishirini(?: na (?:{_SW_UNITS}))?|{_SW_UNITS}|\d{{1,2}})"

_YEARS = (  # "years", "years old", "year and three months", "and a half years"
    rf"(?:\s+(?:and\s+(?:a\s+half|{_AGE_NUMBER}\s+months?)\s+)?(?:years?|yrs?|months?)(?:[- ]old)?"
    rf"(?:\s+and\s+{_AGE_NUMBER}\s+months?)?)"
)
AGE_PATTERNS = [
    re.compile(rf"\b{_AGE_NUMBER}[- ](?:years?|yrs?|months?)[- ]old\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE_NUMBER}[- ]year[- ]old\b", re.IGNORECASE),
    re.compile(rf"\baged? (?:of )?{_AGE_NUMBER}\b", re.IGNORECASE),
    re.compile(rf"\bmiaka {_SW_NUMBER}(?: (?:mpaka|hadi|au) {_SW_NUMBER})?\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE_NUMBER} (?:to|or|and|-) {_AGE_NUMBER}{_YEARS}", re.IGNORECASE),
]
# "she is nine", "the boy is seven", "I'm 14", "maybe ten": a bare number after a copula, not a time or a sum.
_NOT_AN_AGE = (
    r"(?!\s*(?:o'clock|am\b|pm\b|:|%|percent|shillings|bob|minutes|hours|km|kilomet|times|of\b|people|children|kids|"
    r"days|weeks|years? (?:ago|since)|months? (?:ago|since)|in the|kids|wives|cows|goats|plots|rooms|classes|grade))"
)
BARE_AGE = re.compile(
    r"\b(?:i am|i'm|im|is|was|he's|she's|they're|are|turned|turns|looks|look)\s+"
    r"(?:only\s+|just\s+|maybe\s+|about\s+|around\s+|like\s+|almost\s+|nearly\s+|now\s+)*"
    rf"(?P<age>(?:{_AGE_NUMBER} (?:or|to) )?{_AGE_NUMBER}{_YEARS}?)\b{_NOT_AN_AGE}",
    re.IGNORECASE,
)
# The caller's answer to "how old are you?": "Fifteen." / "I think eleven."
ANSWER_AGE = re.compile(rf"^\W*(?:\w+\W+){{0,3}}?(?P<age>{_AGE_NUMBER}{_YEARS}?)\b{_NOT_AN_AGE}", re.IGNORECASE)
ASKS_AGE = re.compile(r"\bhow old\b|\bwhat age\b|\bage (is|of)\b|\bmiaka mingapi\b|\bumri\b", re.IGNORECASE)
SHORT_CODE = re.compile(r"\b(?:116|1195|999|112|one[- ]one[- ]six)\b", re.IGNORECASE)
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
_CAP = r"(?:[A-Z][\w'’-]*|\d+)"
_PLACE_HEAD = (
    r"(?i:market|stage|bus stage|bus stop|petrol station|police station|police post|hospital|health cent(?:re|er)"
    r"|dispensary|clinic|mall|supermarket|church|mosque|cathedral|bridge|roundabout|river|county|district|slum|stadium|court|"
    r"children'?s home|rescue cent(?:re|er)|shopping cent(?:re|er)|primary|secondary)"
)
LANDMARK = re.compile(rf"\b(?P<place>[A-Z][\w'’-]+(?: (?:{_CAP}|and|of|Level|Phase)){{0,5}} {_PLACE_HEAD})\b")
NUMBERED_PLACE = re.compile(r"\b(?P<place>[A-Z][\w'’-]+(?: Phase| Section| Stage| Zone)? \d{1,3}[A-Z]?)\b")
PLACE_CUES = re.compile(
    r"\b(?:in|at|near|from|behind|around|opposite|outside|kwa|huko|hapa|niko|tuko|kutoka|karibu na|pale)\s+(?:the\s+)?"
    r"(?P<place>[A-Z][\w'’-]+(?: [A-Z][\w'’-]+){0,2})"
    r"(?= village| estate| area| town| location| ward|\W|$)"
)
# Capitalised words that start spoken sentences or name relations, never names.
_NOT_NAMES_TEXT = """
I Im Hello Hi Yes No Okay Ok Please Thank Thanks Sorry Madam Sir Mum Mom Dad Mama Baba Teacher God Jesus
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
September October November December English Swahili Kiswahili Christmas Easter The This That And But So Um Uh
Childline Helpline Police Mr Mrs Ms Dr Aunty Auntie Uncle Grandma Grandpa Bibi Shosho Guka Sasa Asante Habari
Pole Sawa Ndio Hapana Nataka Niko Mimi Yeye Wewe Sisi Not Now Then When Where What Why How Who Also Because
Our My Your His Her Their We They He She It Is Are Was Were Just Very Really Can Could Would Should Will
Form Class Standard Grade Primary Secondary Karibu Kuna Tuko Niko Naitwa Anaitwa Nimefanya Amekubali Lakini Kwa
Na Ni Ya Wa Hii Hiyo Huyu Yule Leo Kesho Jana Asubuhi Jioni Usiku Baba Mama Mzee Mwalimu Dada Kaka Shangazi
Madam Teacher Pastor Chief Officer Nurse Doctor Daddy Mummy Cucu Shamba Please Hello Okay Yeah Sure Right
"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())


@dataclass(frozen=True, slots=True)
class Entity:
    label: str
    text: str
    start_char: int
    end_char: int


def _overlaps(a: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a[0] < end and start < a[1] for start, end in taken)


def _load_places(path: Path) -> re.Pattern[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"(?<![\w'’-])(?:{alternatives})(?![\w'’-])")


PLACES_FILE = Path(__file__).parent / "data" / "places.txt"
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_SW_DAYS = "Jumatatu|Jumanne|Jumatano|Alhamisi|Ijumaa|Jumamosi|Jumapili"
DATE = re.compile(
    rf"\b(?:(?:last|next) )?(?:{_WEEKDAYS}|{_SW_DAYS})\b"
    rf"|\b(?:\d{{1,2}}(?:st|nd|rd|th)? (?:of )?)?(?:{_MONTHS})(?: \d{{1,2}}(?:st|nd|rd|th)?)?(?:,? (?:19|20)\d\d)?\b"
    r"|\b(?:19|20)\d\d\b"
)


class EntityExtractor:
    """Not thread-safe (spaCy pipelines are used from one thread)."""

    def __init__(self, nlp, places_file: Path = PLACES_FILE) -> None:  # nlp: a loaded spaCy Language
        self._nlp = nlp
        self._places = _load_places(places_file)

    def extract(self, text: str, answers_age_question: bool = False) -> list[Entity]:
        """Entities in one utterance; `answers_age_question` when the other side just asked "how old"."""
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(label: str, start: int, end: int) -> None:
            span_text = text[start:end].strip(" ,.;:!?\"'")
            if not span_text:
                return
            start = text.index(span_text, start)
            end = start + len(span_text)
            if not _overlaps((start, end), taken):
                found.append(Entity(label, span_text, start, end))
                taken.append((start, end))

        self._add_numbers(text, add, answers_age_question)
        for m in SCHOOL.finditer(text):
            add("SCHOOL", m.start(), m.end())
        for pattern in (LANDMARK, NUMBERED_PLACE):
            for m in pattern.finditer(text):
                if m.group("place").split()[0] not in NOT_NAMES:
                    add("PLACE", m.start("place"), m.end("place"))
        for m in self._places.finditer(text):
            add("PLACE", m.start(), m.end())
        for m in DATE.finditer(text):
            add("DATE", m.start(), m.end())
        for m in PERSON_CUES.finditer(text):
            if m.group("name").split()[0] not in NOT_NAMES:
                add("PERSON", m.start("name"), m.end("name"))
        for m in PLACE_CUES.finditer(text):
            if m.group("place").split()[0] not in NOT_NAMES and not self._places.fullmatch(m.group("place")):
                add("PLACE", m.start("place"), m.end("place"))
        self._add_spacy(text, add)
        return sorted(found, key=lambda e: e.start_char)

    def _add_numbers(self, text: str, add, answers_age_question: bool) -> None:
        for pattern in (PHONE_WORDS, PHONE_DIGITS):
            for m in pattern.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) >= 9 or pattern is PHONE_WORDS:
                    add("PHONE", m.start(), m.end())
        for m in SHORT_CODE.finditer(text):
            add("PHONE", m.start(), m.end())
        for pattern in AGE_PATTERNS:
            for m in pattern.finditer(text):
                add("AGE", m.start(), m.end())
        for m in BARE_AGE.finditer(text):
            add("AGE", m.start("age"), m.end("age"))
        if answers_age_question and (m := ANSWER_AGE.search(text)):
            add("AGE", m.start("age"), m.end("age"))

    def _add_spacy(self, text: str, add) -> None:
        for ent in self._nlp(text).ents:
            label = _spacy_label(ent)
            if label is not None:
                add(label, ent.start_char, ent.end_char)


def _spacy_label(ent) -> str | None:
    """spaCy's PERSON, place and ORG labels where the rules found nothing; its DATEs are mostly durations."""
    text = ent.text.strip()
    words = text.split()
    if not words or not words[0][:1].isupper() or words[0] in NOT_NAMES:
        return None  # spoken text is cased by the recogniser: a lower-case "name" is a Swahili word
    if ent.label_ == "PERSON":
        return "PERSON"
    if ent.label_ in ("GPE", "LOC", "FAC"):
        return "PLACE"
    if ent.label_ == "ORG" and (len(words) > 1 or (text.isupper() and len(text) > 2)):
        return "ORG"
    return None
