"""Entities helplines record: spaCy's NER plus rules for what it misses in spoken text.

spaCy's small English model reads "0712 345 678" and "12 years old" as DATE and most East
African names and sentence-initial Swahili words as places, so phone numbers, ages, schools,
organisations and most places come from rules and gazetteers (data/places.txt,
data/organisations.txt), and the region's common names from data/names.txt. spaCy's labels are
only trusted where the rules say nothing, and its places only after a word like "in" or "niko".
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
# Swahili numerals, with the forms that agree with "miaka" (years): "miaka miwili", "miaka kumi na minne".
_SW_UNITS = "mmoja|moja|mbili|miwili|tatu|mitatu|nne|minne|tano|mitano|sita|saba|nane|minane|tisa"
_SW_TENS = "kumi|ishirini|thelathini|arobaini|hamsini|sitini|sabini|themanini|tisini"
_SW_NUMBER = rf"(?:(?:{_SW_TENS})(?: na (?:{_SW_UNITS}))?|{_SW_UNITS})(?: na nusu)?"
_ANY_NUMBER = rf"(?:{_AGE_NUMBER}|{_SW_NUMBER})"
_SW_AGE_UNIT = r"(?:miaka|mwaka|miezi|mwezi)"

_YEARS = (  # "years", "years old", "year and three months", "and a half years"
    rf"(?:\s+(?:and\s+(?:a\s+half|{_AGE_NUMBER}\s+months?)\s+)?(?:years?|yrs?|months?)(?:[- ]old)?"
    rf"(?:\s+and\s+(?:a\s+half|{_AGE_NUMBER}\s+months?))?|\s+and\s+a\s+half)"
)
_YEARS_OPT = rf"(?:{_YEARS})?+"  # possessive: "three months behind" must not fall back to a bare "three"
# What may follow a number that is an age: not a unit of time, money or distance, not a count of things, not
# "is" ("the big one is six"), not a duration ("miaka miwili sasa").
_NOT_AN_AGE = (
    r"(?!\s*(?:o'clock|am\b|pm\b|:|%|percent|shillings|bob|minutes?\b|hours?\b|km|kilomet|times|of\b|people|"
    r"children|kids|days?\b|weeks?\b|years? (?:ago|since|now)|months? (?:ago|since|now)|in the|wives|cows|goats|plots|"
    r"rooms|classes|grade|ago\b|since\b|pregnant|more\b|other\b|is\b|was\b|hundred|thousand|million|famil|"
    r"houses?\b|behind|at a time|time\b|iliyopita|zilizopita|sasa\b|tu\b|watoto|siku))"
)
_HEDGE = r"(?:(?:only|just|maybe|about|around|like|almost|nearly|now|i think|i'd say|kama|karibu)\s+)*"
AGE_PATTERNS = [
    re.compile(rf"\b{_AGE_NUMBER}[- ](?:years?|yrs?|months?)[- ]old\b", re.IGNORECASE),
    re.compile(rf"\b{_AGE_NUMBER}[- ]year[- ]old\b", re.IGNORECASE),
    re.compile(rf"\baged? (?:of )?{_AGE_NUMBER}\b", re.IGNORECASE),
    # "miaka kumi" is an age, "kwa miaka miwili" (for two years) and "miaka miwili sasa" (two years now) are not.
    re.compile(
        rf"(?<!kwa )(?<!tangu )(?<!hata )\b{_SW_AGE_UNIT} (?:kama )?(?:{_SW_NUMBER}|\d{{1,2}})\b{_NOT_AN_AGE}", re.I
    ),
]
# A bare number where the sentence says it is someone's age:
# "she is nine", "I'm 14", "ana kumi na tano" (she has fifteen), "boys of ten", "Mwaura, fourteen, form one".
_PERSON_NOUN = (
    r"(?:boys?|girls?|child(?:ren)?|kids?|bab(?:y|ies)|sons?|daughters?|sisters?|brothers?|niece|nephew|"
    r"grand(?:child|son|daughter)|twins|man|woman|men|women|adult|pupils?|students?|learners?|one|young|small|little)"
)
BARE_AGE_PATTERNS = [
    re.compile(
        # not "there are two", "it is almost four", "we are six boys"
        r"\b(?<!there )(?<!it )(?<!we )(?:i am|i'm|im|is|was|he's|she's|are|turned|turns|looks|look|both)\s+"
        rf"{_HEDGE}(?P<age>{_AGE_NUMBER}{_YEARS_OPT})\b{_NOT_AN_AGE}",
        re.IGNORECASE,
    ),
    re.compile(  # Swahili "she has (years)": callers mix in English numbers, "ana ten"
        rf"\b(?:ana|nina|una|niko(?: na)?)\s+{_HEDGE}(?P<age>{_ANY_NUMBER}{_YEARS_OPT})\b{_NOT_AN_AGE}", re.IGNORECASE
    ),
    re.compile(rf"\b{_PERSON_NOUN}\s+(?:of|aged)\s+{_HEDGE}(?P<age>{_AGE_NUMBER}{_YEARS_OPT})\b{_NOT_AN_AGE}", re.I),
    re.compile(  # apposition: a person, a comma, a number, then the end of the phrase
        rf"(?:\b(?i:{_PERSON_NOUN})|\b(?P<name>[A-Z][a-z'’]+))\s*,\s+{_HEDGE}(?P<age>{_AGE_NUMBER}{_YEARS_OPT})"
        rf"\b{_NOT_AN_AGE}(?=\s*(?:[,.;?!]|$|(?i:\s+(?:and|or|now|form|class|grade|standard)\b)))"
    ),
    re.compile(  # the last of a list of numbers that ends in "years": "twelve" in "eight to twelve years"
        rf"\b{_AGE_NUMBER}(?:\s*,\s*|\s+(?:and|or|to|-)\s+)(?P<age>{_AGE_NUMBER}{_YEARS})\b{_NOT_AN_AGE}", re.I
    ),
]
# The caller's answer to "how old are you?": "Fifteen." / "I think eleven." / "Kumi na tano."
ANSWER_AGE = re.compile(
    rf"^\W*(?:\w+\W+){{0,3}}?(?P<age>(?:{_SW_AGE_UNIT} )?{_ANY_NUMBER}{_YEARS_OPT})\b{_NOT_AN_AGE}", re.IGNORECASE
)
# The next number in a list of ages: "twelve, eight and four", "ten to thirteen years", "miaka miwili na minne".
NEXT_AGE_IN_LIST = re.compile(
    r"(?:\s*,\s*(?:and\s+|na\s+|then\s+)?|\s+(?:and|or|to|na|au|mpaka|hadi)\s+)"
    rf"{_HEDGE}(?P<age>(?:{_SW_AGE_UNIT} )?{_ANY_NUMBER}{_YEARS_OPT})\b{_NOT_AN_AGE}",
    re.IGNORECASE,
)
# A number just before an age in such a list, "ten" in "ten to thirteen years".
PREVIOUS_AGE_IN_LIST = re.compile(  # not "form two, fourteen years" or "the small one, five years"
    r"(?<!form )(?<!grade )(?<!class )(?<!standard )(?<!std )(?<!senior )(?<!darasa la )(?<!kidato cha )\b(?!one\b)"
    rf"(?P<age>{_ANY_NUMBER})(?:\s*,\s*(?:and\s+)?|\s+(?:and|or|to|na|au|mpaka|hadi)\s+){_HEDGE}$",
    re.IGNORECASE,
)
ASKS_AGE = re.compile(
    r"\bhow old\b|\bwhat age\b|\bage (is|of)\b|\b(?:miaka|umri) (?:mingapi|ngapi|gani)\b|\bumri\b", re.IGNORECASE
)
SHORT_CODE = re.compile(r"\b(?:116|1195|999|112|one[- ]one[- ]six)\b", re.IGNORECASE)
PHONE_DIGITS = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s-]?)?\(?\d{2,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\w)")
_DIGIT_WORD = rf"(?:{_UNITS}|double (?:{_UNITS})|triple (?:{_UNITS}))"
PHONE_WORDS = re.compile(rf"\b{_DIGIT_WORD}(?:[\s,.-]+{_DIGIT_WORD}){{6,}}\b", re.IGNORECASE)
SCHOOL = re.compile(
    r"\b(?:St\.? |Saint )?(?:[A-Z][\w'’-]+ ){1,4}"
    r"(?:Primary|Secondary|High|Girls'?|Boys'?|Mixed|Day|Junior|Comprehensive|Academy|Preparatory|Prep)"
    r"(?: (?:and|&) \w+)?(?: (?:School|Academy|Secondary|Primary))*\b"
)
# Organisations by the word that ends their name, and what follows it: "Autism Society of Kenya", "Child and
# Family Protection Unit", "National Council for Persons with Disabilities", "Ministry of Education". A comma
# ends the name unless "and" or "of" follows it ("Ministry of Gender, Labour and ..." is cut after "Gender"), so
# a place after the comma is not taken into the name.
_ORG_HEAD = (
    r"(?:Society|Association|Foundation|Federation|Commission|Authority|Council|Board|Agency|Bureau|Network|Trust|"
    r"Initiative|Programme|Program|Fund|Forum|Ministry|Department|Directorate|Service|Services|Unit|Organisation|"
    r"Organization|Union|League|Alliance|Institute|Coalition|Recruitment|Agencies|Limited|Ltd|Company)"
)
_ORG_WORD = r"[A-Z][\w'’-]*"
_ORG_INNER_WORDS = ("and", "&", "of", "for")  # between the words before the head: "Child and Family Protection Unit"
_ORG_LINK = r"(?:,? (?:and|&|of|for|the|with|on|against|ya|wa|la|cha|na))*"
ORGANISATION = re.compile(
    rf"\b(?P<org>(?:{_ORG_WORD} (?:(?:{'|'.join(_ORG_INNER_WORDS)}) )?){{0,5}}{_ORG_HEAD}"
    rf"(?:{_ORG_LINK} {_ORG_WORD}(?:{_ORG_LINK} {_ORG_WORD}){{0,5}})?)\b"
)
# In Swahili the head comes first: "Wizara ya Elimu", "Shirika la Msalaba Mwekundu", "Chama cha Walemavu".
SW_ORGANISATION = re.compile(
    rf"\b(?P<org>(?:Wizara|Idara|Shirika|Chama|Baraza|Tume|Mamlaka) (?:ya|la|cha|wa) {_ORG_WORD}"
    rf"(?:{_ORG_LINK} {_ORG_WORD}){{0,5}})\b"
)

# Names: titles belong to the name ("Mr Otieno", "Mama Wanjiku", docs/labelling.md).
_TITLE = r"(?:(?:Mr|Mrs|Ms|Dr|Mzee|Mama|Baba|Madam|Bi|Bw|Pastor|Auntie|Aunt|Uncle)\.? )"
_NAME = rf"{_TITLE}?[A-Z][a-z'’]+(?: [A-Z][a-z'’]+)?"
LEADING_TITLE = re.compile(f"^{_TITLE}")
_KIN = (
    r"cousin|friend|aunt|auntie|uncle|sister|brother|son|daughter|niece|nephew|neighbour|husband|wife|boyfriend|"
    r"girlfriend|grandmother|grandfather|grandson|granddaughter|stepfather|stepmother|teacher"
)
PERSON_CUES = re.compile(  # the cue in any case (it may start a sentence), the name capitalised
    r"\b(?i:my name is|name is|i am called|i'm called|called|named|naitwa|anaitwa|wanaitwa|jina langu ni|this is|"
    r"i am|i'm|her name is|his name is|call me|speaking with|talking to|unaongea na|naongea na|mimi ni|ni|"
    rf"my (?:{_KIN}),?|call (?:him|her|me)|ni mimi|"
    r"(?:binti|mwana|mtoto|shangazi|mjomba|bibi|babu|dada|kaka|rafiki|mwalimu|jirani|mke|mume) (?:yangu|wangu),?|"
    rf"mwanangu,?)\s+(?P<name>{_NAME})"
)
# "Tevin is seven and Sharon is five": a capitalised word whose age follows.
NAME_WITH_AGE = re.compile(rf"\b(?P<name>[A-Z][a-z'’]+) (?:is|ana) (?:{_HEDGE})(?:miaka )?{_ANY_NUMBER}\b{_NOT_AN_AGE}")
TITLED_NAME = re.compile(rf"\b(?P<name>{_TITLE}[A-Z][a-z'’]+(?: [A-Z][a-z'’]+)?)")
AGENT_NAME = re.compile(rf"\b(?P<name>{_NAME}),? speaking\b")  # "Purity speaking"
ASKS_NAME = re.compile(
    r"\bnames?\b|\bjina\b|\bmajina\b|\bunaitwa\b|\bwho am i\b|\bwho is (?:this|speaking|calling)\b|\bcall you\b",
    re.IGNORECASE,
)
# The caller's answer to "what's your name?": "Wekesa." / "Mrs Njoroge, Lydia Njoroge." / "Eh, Akinyi."
ANSWER_NAME = re.compile(
    r"^\W*(?:(?i:yes|okay|ok|eh|em|um|uh|ah|sawa|ndio|naam|it's|its)\W+)*"
    rf"(?P<name>{_TITLE}?[A-Z][a-z'’]+(?: [A-Z][a-z'’]+){{0,2}})(?=[\s,.;?!]|$)"
)
# The next name of a list: "Imani and Sifa", "Ireri, Muthoni".
NEXT_NAME_IN_LIST = re.compile(rf"(?:,\s*(?:and\s+)?|\s+(?:and|na)\s+)(?P<item>{_NAME})(?=[\s,.;?!]|$)")
_CAP = r"(?:[A-Z][\w'’-]*|\d+)"
_PLACE_HEAD = (
    r"(?i:market|stage|bus stage|bus stop|petrol station|police station|police post|hospital|health cent(?:re|er)"
    r"|dispensary|clinic|mall|supermarket|church|mosque|cathedral|bridge|roundabout|river|county|district|slum|stadium|court|"
    r"children'?s home|rescue cent(?:re|er)|shopping cent(?:re|er)|primary|secondary)"
)
LANDMARK = re.compile(rf"\b(?P<place>[A-Z][\w'’-]+(?: (?:{_CAP}|and|of|Level|Phase)){{0,5}} {_PLACE_HEAD})\b")
NUMBERED_PLACE = re.compile(  # "Githurai 45", "Nakuru Level 5"
    r"\b(?P<place>(?:[A-Z][\w'’-]+ Level|[A-Z][\w'’-]+(?: Phase| Section| Stage| Zone)?) \d{1,3}[A-Z]?)\b"
)
# Class names and number plates, never places: "P7", "PP1", "S3", "KDA 418M".
NOT_A_PLACE = re.compile(r"(?:P|PP|S|F|Std|Form|Grade|Class|Standard)\s?\d{1,2}|[A-Z]{2,4} \d.*")
# Words after which a capitalised name is where someone is, lives or goes.
_PLACE_CUE_WORDS = (
    r"in|at|near|from|behind|around|opposite|outside|along|past|"
    r"(?:moved|went|go|going|gone|come|came|coming|taken|travell?ed|returned|migrated|relocated) to|"
    r"kwa|huko|hapa|pale|karibu na|kutoka|niko|tuko|yuko|wako|mko|iko|nipo|yupo|tupo|wapo|"
    r"(?:n|tun|an|wan)a(?:kaa|ishi)|(?:kijiji|kituo) cha|mtaa wa|maeneo ya|(?:wilaya|kaunti|hospitali) ya|"
    r"mkoa wa|tumepita|nimefika|amefika|wamefika"
)
PLACE_CUES = re.compile(  # the cue in any case (it may start a sentence), the place capitalised
    rf"\b(?i:{_PLACE_CUE_WORDS})\s+(?i:the\s+)?"
    r"(?P<place>[A-Z][\w'’-]+(?: [A-Z][\w'’-]+){0,2})"
    r"(?= village| estate| area| town| location| ward|\W|$)"
)
PLACE_CUE_BEFORE = re.compile(rf"\b(?:{_PLACE_CUE_WORDS})\s+(?:the\s+)?$", re.IGNORECASE)
# The next place in "Nakuru, Lanet" or "Kishapu, Shinyanga region": a comma, then capitalised words that end
# the phrase.
NEXT_PLACE_IN_LIST = re.compile(
    r",\s+(?P<item>[A-Z][\w'’-]+(?: [A-Z][\w'’-]+){0,2})"
    r"(?=\s*(?:[,.;?!]|$|\s+(?:village|estate|area|town|location|ward|county|district|region|sub-county|road)\b))"
)
# Capitalised words that start spoken sentences or name relations, never names.
_NOT_NAMES_TEXT = """
I Im Hello Hi Yes No Okay Ok Please Thank Thanks Sorry Madam Sir Mum Mom Dad Mama Baba Teacher God Jesus
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
September October November December English Swahili Kiswahili Christmas Easter The This That And But So Um Uh
Childline Helpline Police Mr Mrs Ms Dr Aunty Auntie Uncle Grandma Grandpa Bibi Shosho Guka Sasa Asante Habari
Pole Sawa Ndio Hapana Nataka Niko Mimi Yeye Wewe Sisi Not Now Then When Where What Why How Who Also Because
Our My Your His Her Their We They He She It Is Are Was Were Just Very Really Can Could Would Should Will
Form Class Standard Grade Primary Secondary At In Near From Along
Karibu Kuna Tuko Niko Naitwa Anaitwa Nimefanya Amekubali Lakini Kwa
Na Ni Ya Wa Hii Hiyo Huyu Yule Leo Kesho Jana Asubuhi Jioni Usiku Baba Mama Mzee Mwalimu Dada Kaka Shangazi
Madam Teacher Pastor Chief Officer Nurse Doctor Daddy Mummy Cucu Shamba Please Hello Okay Yeah Sure Right
I'm I’m You're It's I'd I'll Good Morning Afternoon Evening Call Child Huduma Simu Jina On By Since Until
After Before Std
"""
NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
# Capitals that spaCy calls organisations and callers say every day: messages, exams, services, forms.
_NOT_ORGANISATIONS_TEXT = """
SMS FGM GBV MUAC CHV VHT KCSE KCPE PLE UCE UACE CRE IRE UPE USE HIV AIDS ARV ARVs TB ID OB OCS LC1 LC PRC P3 NGO
NGOs PWD CBC ECDE
"""
NOT_ORGANISATIONS = frozenset(_NOT_ORGANISATIONS_TEXT.split())
# Words that do not start an organisation's name: those that start spoken sentences (NOT_NAMES), less the few
# that do start one ("Child Welfare Society", "Police Service").
_NOT_ORGANISATION_WORDS = NOT_NAMES - {"Child", "Childline", "Helpline", "Police", "Huduma", "Primary", "Secondary"}


@dataclass(frozen=True, slots=True)
class Entity:
    label: str
    text: str
    start_char: int
    end_char: int


def _overlaps(a: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(a[0] < end and start < a[1] for start, end in taken)


def _gazetteer_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _whole_words(names) -> re.Pattern[str]:
    """One case-sensitive pattern for a gazetteer: whole words, longest name first."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"(?<![\w'’-])(?:{alternatives})(?![\w'’-])")


def _load_names(path: Path) -> re.Pattern[str]:
    return _whole_words(_gazetteer_lines(path))


WORD_NAME_MARK = " *"  # names.txt: a name that is also an everyday word ("Baraka", "Hawa", "Grace")


def _load_person_names(path: Path) -> tuple[re.Pattern[str], frozenset[str]]:
    """names.txt as one pattern (the capital is part of the evidence) and the set of names that are
    also everyday words."""
    lines = _gazetteer_lines(path)
    words = frozenset(line.removesuffix(WORD_NAME_MARK) for line in lines if line.endswith(WORD_NAME_MARK))
    return _whole_words(line.removesuffix(WORD_NAME_MARK) for line in lines), words


PLACES_FILE = Path(__file__).parent / "data" / "places.txt"
ORGANISATIONS_FILE = Path(__file__).parent / "data" / "organisations.txt"
NAMES_FILE = Path(__file__).parent / "data" / "names.txt"
# Before a name that is also a word, these make it the word: "by the Grace of God", "mwezi wa Ramadhani".
_ARTICLE_BEFORE = re.compile(r"\b(?i:the|a|an|god'?s|his|her|our|your|their|mwezi wa|month of)\s+$")
_NEXT_WORD = re.compile(r" (?P<word>[A-Z][a-z'’]+)(?![\w'’-])")  # a surname after a given name
# Words after a name that make it a place or an institution named after a person: "Kamau Road",
# "Wilson Airport", "Masinde Muliro University".
_NAMED_AFTER = re.compile(
    r"(?i:road|street|avenue|lane|drive|estate|village|town|market|stage|hospital|school|academy|primary|"
    r"secondary|church|mosque|centre|center|house|hall|court|county|ward|location|stadium|farm|university|"
    r"college|airport|institute|polytechnic|memorial|park|bridge|station)"
)
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

    def __init__(
        self,
        nlp,
        places_file: Path = PLACES_FILE,
        organisations_file: Path = ORGANISATIONS_FILE,
        names_file: Path = NAMES_FILE,
    ) -> None:  # nlp: a loaded spaCy Language
        self._nlp = nlp
        # Only the entity recogniser is needed here, and it has its own token vectors: skipping the
        # tagger and parser halves the cost (7.2 to 3.7 ms a turn); on five training sets it found 2
        # fewer of 1,411 names and 1 fewer false one. The clause features (clauses.py) need the parse.
        self._not_ner = [name for name in nlp.pipe_names if name != "ner"]
        self._places = _load_names(places_file)
        self._organisations = _load_names(organisations_file)
        self._person_names, self._word_names = _load_person_names(names_file)

    def extract(
        self, text: str, answers_age_question: bool = False, answers_name_question: bool = False
    ) -> list[Entity]:
        """Entities in one utterance; `answers_age_question` when the other side just asked "how old",
        `answers_name_question` when it asked for a name."""
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(label: str, start: int, end: int) -> bool:
            """Keep the span unless an earlier rule took any of it; True when kept."""
            span_text = text[start:end].strip(" ,.;:!?\"'")
            if not span_text:
                return False
            start = text.index(span_text, start)
            end = start + len(span_text)
            if _overlaps((start, end), taken):
                return False
            found.append(Entity(label, span_text, start, end))
            taken.append((start, end))
            return True

        self._add_numbers(text, add, answers_age_question)
        for m in SCHOOL.finditer(text):
            add("SCHOOL", m.start(), m.end())
        # Before places: "Kenya Red Cross" and "Kenya Ports Authority" are not the place "Kenya".
        for m in self._organisations.finditer(text):
            add("ORG", m.start(), m.end())
        for m in ORGANISATION.finditer(text):
            if (start := _organisation_start(m)) is not None:
                add("ORG", start, m.end("org"))
        for m in SW_ORGANISATION.finditer(text):
            add("ORG", m.start("org"), m.end("org"))
        for pattern in (LANDMARK, NUMBERED_PLACE):
            for m in pattern.finditer(text):
                if _may_be_place(m.group("place")):
                    add("PLACE", m.start("place"), m.end("place"))
        for m in self._places.finditer(text):
            add("PLACE", m.start(), m.end())
        for m in DATE.finditer(text):
            add("DATE", m.start(), m.end())
        names = [
            m.span("name")
            for pattern in (PERSON_CUES, TITLED_NAME, AGENT_NAME, NAME_WITH_AGE)
            for m in pattern.finditer(text)
        ]
        if answers_name_question and (m := ANSWER_NAME.search(text)):
            names.append(m.span("name"))
        for start, end in _leftmost_longest_first(names):
            if self._may_be_name(text[start:end]):
                add("PERSON", start, end)
        self._add_known_names(text, add)
        for m in PLACE_CUES.finditer(text):
            if _may_be_place(m.group("place")) and not self._places.fullmatch(m.group("place")):
                add("PLACE", m.start("place"), m.end("place"))
        self._add_spacy(text, add)
        # What is listed after a place or a name: "Lanet" in "Nakuru, Lanet", "Sifa" in "Imani and Sifa".
        _add_listed(text, found, add, "PLACE", NEXT_PLACE_IN_LIST, _may_be_place)
        _add_listed(text, found, add, "PERSON", NEXT_NAME_IN_LIST, self._may_be_name)
        return sorted(found, key=lambda e: e.start_char)

    def _add_numbers(self, text: str, add, answers_age_question: bool) -> None:
        for pattern in (PHONE_WORDS, PHONE_DIGITS):
            for m in pattern.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) >= 9 or pattern is PHONE_WORDS:
                    add("PHONE", m.start(), m.end())
        for m in SHORT_CODE.finditer(text):
            add("PHONE", m.start(), m.end())
        ages: list[tuple[int, int]] = []
        for pattern in AGE_PATTERNS:
            ages += [m.span() for m in pattern.finditer(text)]
        for pattern in BARE_AGE_PATTERNS:
            for m in pattern.finditer(text):
                name = m.groupdict().get("name")  # only the apposition pattern has one: "Mwaura, fourteen"
                if name is None or (name not in NOT_NAMES and not _starts_sentence(text, m.start("name"))):
                    ages.append(m.span("age"))
        if answers_age_question and (m := ANSWER_AGE.search(text)):
            ages.append(m.span("age"))
        for start, end in _leftmost_longest_first(_with_listed_ages(text, ages)):
            add("AGE", start, end)

    def _add_spacy(self, text: str, add) -> None:
        for ent in self._nlp(text, disable=self._not_ner).ents:
            label = _spacy_label(ent)
            if label == "PLACE" and (
                not PLACE_CUE_BEFORE.search(text, max(0, ent.start_char - 40), ent.start_char)
                or not _may_be_place(ent.text)
            ):
                # Without a cue, spaCy's places are mostly names and sentence-initial Swahili words.
                continue
            if label in ("PERSON", "ORG") and _starts_sentence(text, ent.start_char):
                # A "name" or "organisation" that starts a sentence is mostly Swahili words ("Nikusaidie",
                # "Habari samahani"); the cue rules above catch "Naitwa Wekesa" and the answer to "what's
                # your name?", and the gazetteer and ORGANISATION the organisations.
                continue
            if label == "PERSON" and self._is_word_here(text, ent.start_char, ent.text):
                continue  # "by the Grace of God"
            if label is not None:
                add(label, ent.start_char, ent.end_char)

    def _add_known_names(self, text: str, add) -> None:
        """Names from names.txt, with the surname that follows ("Zuhura Mwinyi", "Akinyi Odera"). A
        name that is also a word counts only inside a sentence and not after an article, or before
        a surname from the list ("Faith Wanjiru"); none counts in a place's or an institution's name
        ("Wilson Airport", "Masinde Muliro University"), which the place rules after this may take."""
        for m in self._person_names.finditer(text):
            start, end = m.span()
            surname = _NEXT_WORD.match(text, end)
            after = _NEXT_WORD.match(text, surname.end()) if surname else None
            if any(w and _NAMED_AFTER.fullmatch(w.group("word")) for w in (surname, after)):
                continue
            known_surname = surname is not None and self._is_listed_name(surname.group("word"))
            if self._is_word_here(text, start, m.group()) and not known_surname:
                continue
            if surname and self._may_be_surname(surname.group("word")) and add("PERSON", start, surname.end()):
                continue
            add("PERSON", start, end)

    def _is_listed_name(self, word: str) -> bool:
        return word not in self._word_names and self._person_names.fullmatch(word) is not None

    def _is_word_here(self, text: str, start: int, name: str) -> bool:
        """A name that is also a word ("Baraka", "Grace"), where it is the word: at the start of a
        sentence or after an article."""
        return name in self._word_names and (
            _starts_sentence(text, start) or _ARTICLE_BEFORE.search(text, max(0, start - 12), start) is not None
        )

    def _may_be_surname(self, word: str) -> bool:
        return word not in NOT_NAMES and word not in self._word_names and not self._places.fullmatch(word)

    def _may_be_name(self, name: str) -> bool:
        untitled = LEADING_TITLE.sub("", name)
        return untitled.split()[0] not in NOT_NAMES and not self._places.fullmatch(untitled)


def _add_listed(text: str, found: list[Entity], add, label: str, next_in_list: re.Pattern[str], accept) -> None:
    """Follow each `label` entity through the list it starts, one `next_in_list` match at a time."""
    todo = [e.end_char for e in found if e.label == label]
    while todo:
        m = next_in_list.match(text, todo.pop())
        if m and accept(m.group("item")) and add(label, m.start("item"), m.end("item")):
            todo.append(m.end("item"))


def _starts_sentence(text: str, pos: int) -> bool:
    before = text[max(0, pos - 40) : pos].rstrip()  # a window, so that many matches stay linear
    return not before or before[-1] in ".!?"


def _organisation_start(m: re.Match[str]) -> int | None:
    """Where the name starts once words that begin spoken sentences are dropped ("The" in "The Child Welfare
    Society"); None when no more than the head word is left ("Department", "Please Board")."""
    start = m.start("org")
    words = m.group("org").split(" ")
    while words and (words[0] in _NOT_ORGANISATION_WORDS or words[0] in _ORG_INNER_WORDS):
        start += len(words.pop(0)) + 1
    return start if len(words) > 1 else None


def _may_be_place(name: str) -> bool:
    return name.split()[0] not in NOT_NAMES and not NOT_A_PLACE.fullmatch(name)


def _leftmost_longest_first(spans) -> list[tuple[int, int]]:
    """The order to offer overlapping candidate spans to `add`, which keeps the first of any overlap."""
    return sorted(spans, key=lambda span: (span[0], -span[1]))


def _with_listed_ages(text: str, ages: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The ages found plus the numbers listed next to them: "nine and six", "ten to thirteen years"."""
    found = set(ages)
    todo = list(ages)
    while todo:
        start, end = todo.pop()
        neighbours = []
        if m := NEXT_AGE_IN_LIST.match(text, end):
            neighbours.append(m.span("age"))
        # A bounded window: scanning the whole prefix for every age would be quadratic.
        if m := PREVIOUS_AGE_IN_LIST.search(text, max(0, start - 80), start):
            neighbours.append(m.span("age"))
        for span in neighbours:
            if span not in found:
                found.add(span)
                todo.append(span)
    return found


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
    if ent.label_ == "ORG" and (len(words) > 1 or (text.isupper() and len(text) > 2)) and text not in NOT_ORGANISATIONS:
        return "ORG"
    return None
