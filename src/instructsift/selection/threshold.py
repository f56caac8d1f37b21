"""Threshold selectors: keep rows whose score satisfies a comparison, e.g. `ifd <= 1`."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import OptionError
from ..registry import register
from .base import Selection, column, drop_unscored

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_CLAUSE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


def parse_where(expr: str) -> list[tuple[str, str, float]]:
    """`"ifd <= 1 and answer_tokens >= 5"` -> [("ifd", "<=", 1.0), ("answer_tokens", ">=", 5.0)]."""
    clauses = []
    for part in re.split(r"\s+and\s+", expr.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise OptionError(
                f"cannot read the condition {part!r} in {expr!r}: write `column op number`, joined by `and`"
            )
        clauses.append((m.group(1), m.group(2), float(m.group(3))))
    return clauses


@register("select", "threshold")
@dataclass
class Threshold:
    """Keep rows where every clause of `where` holds; drop the rest, and rows missing the score."""

    where: str

    def __post_init__(self) -> None:
        self.clauses = parse_where(self.where)

    def reads(self) -> list[str]:
        """The score columns `where` names (a recipe checks that a step before it writes them)."""
        return [c for c, _, _ in self.clauses]

    def describe(self) -> str:
        return f"keep {self.where}"

    def apply(self, table: Any, selection: Selection) -> None:
        drop_unscored(table, selection, [c for c, _, _ in self.clauses])
        for name, op, value in self.clauses:
            values = column(table, name)
            bad = np.flatnonzero(selection.keep & ~OPS[op](values, value))
            selection.drop(bad, f"fails {name} {op} {value:g}", [f"{name} = {values[i]:.4g}" for i in bad])
