"""Who did what to whom, whether it was denied, and when: features of a sentence read from spaCy's
dependency parse, for the learned risk-flag scorer (nlp/learned.py).

Word n-grams cannot tell "my husband beats me" from "he beats my son", "he has never touched the
children" from "he touched the children", or "they will beat me if I come back" from "they beat
me". Each verb of a sentence is described by its subject's and object's kind (the caller, a child,
an adult, someone named...), whether it is negated, and its time (past, now, future, a modal, a
wish, a condition); the scorer learns which combinations mark a flag. English only: a Swahili
sentence parses into noise, which the scorer learns to ignore, and its n-grams still count.
"""

from __future__ import annotations

from collections.abc import Sequence


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CHILD_WORDS = _words(
    "child children kid kids son sons daughter daughters boy boys girl girls baby babies niece nephew grandson "
    "granddaughter grandchild grandchildren pupil pupils student students learner learners orphan orphans minor "
    "teenager toddler infant stepson stepdaughter sibling siblings brother brothers sister sisters twin twins"
)
ADULT_WORDS = _words(
    "wife husband mother mum mom father dad man men woman women neighbour neighbor aunt uncle grandmother "
    "grandfather grandma grandpa stepfather stepmother boyfriend girlfriend landlord employer boss teacher "
    "headteacher police officer partner parent parents"
)
_CALLER = frozenset({"i", "me", "we", "us", "myself", "ourselves"})
_THIRD_PERSON = frozenset({"he", "him", "she", "her", "they", "them", "himself", "herself", "themselves"})
_NOBODY = frozenset({"nobody", "noone", "nothing", "none"})
_NEGATIONS = frozenset({"not", "n't", "never", "no", *_NOBODY})
_FUTURE_AUX = frozenset({"will", "'ll", "shall", "gonna"})
_MODAL_AUX = frozenset({"would", "could", "might", "may", "should", "can", "must", "'d"})
_PAST_AUX = frozenset({"did", "had", "was", "were", "has", "have"})
_PRESENT_AUX = frozenset({"do", "does", "is", "are", "am", "'m", "'re", "'s"})
_CONDITIONS = frozenset({"if", "unless"})


def _stem(word: str) -> str:
    """A crude stem, so that "beats", "beating" and "beaten" share "beat" (spaCy's lemmatizer is
    not loaded, for speed)."""
    for suffix in ("ing", "ed", "es", "en", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _kind(token) -> str:
    """Whom a subject or object names."""
    if token is None:
        return "none"
    word = token.lower_
    if word in _CALLER:
        return "caller"
    if word in ("you", "yourself"):
        return "you"
    if word in CHILD_WORDS:
        return "child"
    if word in ADULT_WORDS:
        return "adult"
    if word in _THIRD_PERSON:
        return "they"
    if word in _NOBODY:
        return "nobody"
    if token.pos_ == "PROPN":
        return "named"
    return "thing"


def _time(verb) -> str:
    auxiliaries = {c.lower_ for c in verb.children if c.dep_ in ("aux", "auxpass")}
    if auxiliaries & _FUTURE_AUX or "going" in auxiliaries:
        return "future"
    if auxiliaries & _MODAL_AUX:
        return "modal"
    if verb.dep_ == "xcomp" and verb.head.pos_ == "VERB":  # "wants to kill", "threatened to beat"
        return "wish:" + _stem(verb.head.lower_)
    if any(c.dep_ == "mark" and c.lower_ in _CONDITIONS for c in verb.children):
        return "condition"
    if verb.tag_ in ("VBD", "VBN") or auxiliaries & _PAST_AUX:
        return "past"
    if verb.tag_ in ("VBZ", "VBP", "VBG") or auxiliaries & _PRESENT_AUX:
        return "now"
    return "other"


def _negated(verb) -> bool:
    if any(c.dep_ == "neg" or (c.lower_ in _NEGATIONS and c.dep_ in ("advmod", "nsubj", "det")) for c in verb.children):
        return True
    # "he does not want to hurt her": the negation sits on the governing verb
    return verb.dep_ in ("xcomp", "ccomp") and any(c.dep_ == "neg" for c in verb.head.children)


def _child(token, deps: tuple[str, ...]):
    return next((c for c in token.children if c.dep_ in deps), None)


def _subject(verb):
    subject = _child(verb, ("nsubj", "nsubjpass"))
    if subject is None and verb.dep_ in ("xcomp", "conj", "advcl"):  # "he came and beat her"
        subject = _child(verb.head, ("nsubj", "nsubjpass"))
    return subject


def _object(verb):
    """The direct object, else the object of the verb's first preposition ("shouted at the boy")."""
    obj = _child(verb, ("dobj", "dative"))
    if obj is None:
        for preposition in (c for c in verb.children if c.dep_ == "prep"):
            if (obj := _child(preposition, ("pobj",))) is not None:
                break
    return obj


def clause_features(doc) -> list[str]:
    """Feature strings of one parsed sentence: for each verb its time, its subject's and object's
    kind, both kinds together, and its negation; time and kinds (and negation and kinds) without
    the verb, which carry over to verbs the training calls never used; and sentence-wide marks."""
    features = []
    negated_anywhere = not_now = False
    for token in doc:
        if token.pos_ != "VERB":
            continue
        verb = _stem(token.lower_)
        subject, obj = _kind(_subject(token)), _kind(_object(token))
        when = _time(token)
        features += [
            f"{verb}|t={when}",
            f"{verb}|s={subject}",
            f"{verb}|o={obj}",
            f"{verb}|s={subject}|o={obj}",
            f"t={when}|s={subject}|o={obj}",
        ]
        if _negated(token):
            features += [f"{verb}|not", f"not|s={subject}|o={obj}"]
            negated_anywhere = True
        not_now |= when in ("future", "modal", "condition")
    if negated_anywhere:
        features.append("sentence:negated")
    if not_now:
        features.append("sentence:not-now")
    if doc.text.rstrip().endswith("?"):
        features.append("sentence:question")
    return features


class ClauseReader:
    """Parses sentences with a loaded spaCy pipeline (the entity extractor's) and describes them.

    The entity recogniser is skipped: the entity pass (entities.py) has already run it on the turn,
    and here it would only mark names that the tagger already calls proper nouns. Skipping it halves
    the parse (5.9 to 2.9 ms a sentence); on 13,183 training sentences it changed the features of
    55, nearly all Swahili that parses into noise either way."""

    def __init__(self, nlp) -> None:
        self._nlp = nlp
        self._disabled = [name for name in ("ner",) if name in nlp.pipe_names]

    def read(self, texts: Sequence[str]) -> list[list[str]]:
        return [clause_features(doc) for doc in self._nlp.pipe(texts, disable=self._disabled)]

    def read_one(self, text: str) -> list[str]:
        return clause_features(self._nlp(text, disable=self._disabled))
