"""Selectors over the rule scorers' columns: drop rows a rule flagged, and rows in other languages.

LIMA (Zhou et al., NeurIPS 2023, "LIMA: Less Is More for Alignment", section 2.1) filters answers by
length, first person, references to other answers and HTML residue; the scorers in `scoring.rules`
and `scoring.language` record the evidence, these selectors decide and keep it as the drop reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import MissingColumnError, OptionError
from ..registry import register
from ..scoring.rules import RULE_NAMES
from .base import Selection


def parse_names(value: str | Sequence[str], known: Sequence[str], what: str) -> tuple[str, ...]:
    """`"a,b"` or ["a", "b"] -> ("a", "b"), each checked against `known`; "none" or "" -> ()."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    items = [v for v in items if v and v.lower() != "none"]
    if known:
        unknown = [v for v in items if v not in known]
        if unknown:
            raise OptionError(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return tuple(items)


def _need(table: Any, name: str, scorer: str) -> list[Any]:
    if name not in table.column_names:
        raise MissingColumnError(f"the score table has no column {name!r}: run the {scorer} scorer first")
    return table.column(name).to_pylist()


@register("select", "rule_filter")
@dataclass
class RuleFilter:
    """Drop rows where any of `rules` fired; the reason is `rule NAME (evidence)`."""

    rules: tuple[str, ...] | str = RULE_NAMES

    def __post_init__(self) -> None:
        self.rules = parse_names(self.rules, RULE_NAMES, "rule")

    def describe(self) -> str:
        return f"drop rows flagged by {', '.join(self.rules)}" if self.rules else "no rules"

    def apply(self, table: Any, selection: Selection) -> None:
        for rule in self.rules:
            evidence = _need(table, f"rule_{rule}", "rules")
            bad = [i for i in selection.kept.tolist() if evidence[i]]
            selection.drop(bad, f"rule {rule}", [str(evidence[i]) for i in bad])


@register("select", "keep_language")
@dataclass
class KeepLanguage:
    """Keep rows identified as one of `languages` (ISO 639-1 codes). A row identified as another language
    with probability >= `min_prob` is dropped; a less certain guess, or text with no letters, is kept."""

    languages: tuple[str, ...] | str = ("en",)
    min_prob: float = 0.9

    def __post_init__(self) -> None:
        self.languages = parse_names(self.languages, (), "language")
        if not self.languages:
            raise OptionError("name at least one language to keep, e.g. en")
        if not 0.0 <= self.min_prob <= 1.0:
            raise OptionError(f"min_prob must be in [0, 1], got {self.min_prob}")

    def describe(self) -> str:
        return f"keep language {'/'.join(self.languages)} (drop others identified with p >= {self.min_prob:g})"

    def apply(self, table: Any, selection: Selection) -> None:
        langs = _need(table, "lang", "language")
        probs = np.array([np.nan if p is None else p for p in _need(table, "lang_prob", "language")], dtype=np.float64)
        bad = [
            i
            for i in selection.kept.tolist()
            if langs[i] is not None and langs[i] not in self.languages and probs[i] >= self.min_prob
        ]
        want = "/".join(self.languages)
        selection.drop(bad, f"language not {want}", [f"{langs[i]}, p = {probs[i]:.2f}" for i in bad])
