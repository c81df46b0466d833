"""The editable case taxonomy and risk-flag rules (config/taxonomy.toml)."""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from pathlib import Path

import msgspec

RISK_FLAG_IDS = (
    "self_harm",
    "physical_abuse",
    "sexual_abuse",
    "neglect",
    "child_labour",
    "trafficking",
    "immediate_danger",
)
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "config" / "taxonomy.toml"


class TaxonomyError(ValueError):
    pass


class _Entry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    label: str
    description: str = ""
    examples: list[str] = []


class SubCategory(_Entry):
    pass


class Category(_Entry, dict=True):
    priority: int = 3
    keywords: list[str] = []
    implied_by: list[str] = []
    sub: list[SubCategory] = []

    @cached_property
    def keyword_patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(rf"\b(?:{k})\b", re.IGNORECASE) for k in self.keywords]


def _compile(patterns: list[str]) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in patterns]


class CallerContext(msgspec.Struct, dict=True, forbid_unknown_fields=True, kw_only=True):
    """Something the caller says about themselves that holds for the rest of the call ("I'm 35"),
    unless they say something that rules it out ("I'm 15"), which then holds instead. While it
    holds, the flags in `vetoes` are not raised by a sentence matching `vetoed_sentences`."""

    id: str
    description: str = ""
    said: list[str] = []
    unless: list[str] = []
    vetoes: list[str] = []  # risk flag ids
    vetoed_sentences: list[str] = []

    @cached_property
    def compiled_said(self) -> list[re.Pattern[str]]:
        return _compile(self.said)

    @cached_property
    def compiled_unless(self) -> list[re.Pattern[str]]:
        return _compile(self.unless)

    @cached_property
    def compiled_vetoed_sentences(self) -> list[re.Pattern[str]]:
        return _compile(self.vetoed_sentences)


class RiskFlagRule(_Entry, dict=True):
    priority: int = 2
    similarity: float = 0.65  # cosine to the nearest example at which a sentence raises the flag
    patterns: list[str] = []
    # Each entry is a list of patterns that must all match within the sentence and the caller's
    # sentence before it ("right now" + "beating"), one of them in the sentence itself.
    combinations: list[list[str]] = []
    exclude: list[str] = []

    @cached_property
    def compiled_patterns(self) -> list[re.Pattern[str]]:
        return _compile(self.patterns)

    @cached_property
    def compiled_combinations(self) -> list[list[re.Pattern[str]]]:
        return [_compile(group) for group in self.combinations]

    @cached_property
    def compiled_excludes(self) -> list[re.Pattern[str]]:
        return _compile(self.exclude)


class Taxonomy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    category: list[Category]
    flag: list[RiskFlagRule] = []
    caller_context: list[CallerContext] = []

    @property
    def categories(self) -> list[Category]:
        return self.category

    @property
    def flags(self) -> list[RiskFlagRule]:
        return self.flag

    @property
    def caller_contexts(self) -> list[CallerContext]:
        return self.caller_context

    def category_by_id(self, category_id: str) -> Category | None:
        return next((c for c in self.category if c.id == category_id), None)


def load(path: Path | None = None) -> Taxonomy:
    path = path or DEFAULT_PATH
    try:
        raw = tomllib.loads(path.read_text())
        taxonomy = msgspec.convert(raw, Taxonomy)
    except OSError as exc:
        raise TaxonomyError(f"cannot read taxonomy {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise TaxonomyError(f"invalid taxonomy {path}: {exc}") from exc
    _validate(taxonomy, path)
    return taxonomy


def _validate(taxonomy: Taxonomy, path: Path) -> None:
    ids = [c.id for c in taxonomy.category]
    if not ids or len(set(ids)) != len(ids):
        raise TaxonomyError(f"{path}: categories must be present and their ids unique")
    for flag in taxonomy.flag:
        if flag.id not in RISK_FLAG_IDS:
            raise TaxonomyError(f"{path}: unknown risk flag {flag.id!r}; known: {', '.join(RISK_FLAG_IDS)}")
    for category in taxonomy.category:
        for flag_id in category.implied_by:
            if flag_id not in RISK_FLAG_IDS:
                raise TaxonomyError(f"{path}: category {category.id} implied_by unknown flag {flag_id!r}")
        if not 1 <= category.priority <= 3:
            raise TaxonomyError(f"{path}: category {category.id} priority must be 1, 2 or 3")
        _compile_now(path, f"category {category.id}: bad keyword pattern", category, "keyword_patterns")
    for context in taxonomy.caller_context:
        unknown = set(context.vetoes) - set(RISK_FLAG_IDS)
        if unknown:
            raise TaxonomyError(f"{path}: caller context {context.id} vetoes unknown risk flags: {sorted(unknown)}")
        where = f"caller context {context.id}: bad pattern"
        _compile_now(path, where, context, "compiled_said", "compiled_unless", "compiled_vetoed_sentences")
    for flag in taxonomy.flag:
        where = f"flag {flag.id}: bad pattern"
        _compile_now(path, where, flag, "compiled_patterns", "compiled_combinations", "compiled_excludes")


def _compile_now(path: Path, where: str, entry: object, *compiled: str) -> None:
    """Compile an entry's patterns (cached properties) at load, so that a bad one fails there."""
    try:
        for name in compiled:
            getattr(entry, name)
    except re.error as exc:
        raise TaxonomyError(f"{path}: {where}: {exc}") from exc
