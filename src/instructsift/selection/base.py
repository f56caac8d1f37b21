"""What selectors share: a keep mask over the score table and a reason for every dropped row.

Selectors follow scikit-learn's feature selectors (`sklearn/feature_selection/_base.py`): they look
only at columns, never run a model, and expose a support mask. They run in sequence; each sees only
the rows the previous ones kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..data.errors import MissingColumnError
from .size import Amount


@dataclass
class Selection:
    """`keep[i]` for row i of the score table; a dropped row's reason is data: the step that dropped it
    (`steps[i]`, set by `select` as each selector runs), a short `codes[i]` (`fails ifd <= 1`, `not in
    the top 8 by ifd`) and a per-row `details[i]` (the value that decided, `ifd = 1.2`)."""

    keep: np.ndarray
    codes: list[str | None]
    details: list[str | None] = field(default_factory=list)
    steps: list[str | None] = field(default_factory=list)
    rank: dict[int, int] = field(default_factory=dict)  # row position -> 1-based rank where a ranker set one
    step: str | None = None  # the step now running; recorded with each drop
    shares: list[str] = field(default_factory=list)  # what each ratio was a share of, in words (`size`)

    def __post_init__(self) -> None:
        n = len(self.codes)
        self.details = self.details or [None] * n
        self.steps = self.steps or [None] * n

    @classmethod
    def all(cls, n: int) -> Selection:
        return cls(np.ones(n, dtype=bool), [None] * n)

    def drop(self, positions: Any, code: str, detail: str | Sequence[str] | None = None) -> None:
        """Drop rows at `positions` with one `code` and a `detail` for all of them or one per row."""
        at = np.asarray(positions, dtype=np.int64).reshape(-1)
        self.keep[at] = False
        one = detail is None or isinstance(detail, str)
        for start in range(0, len(at), 65536):  # a block of Python ints at a time
            for j, i in enumerate(at[start : start + 65536].tolist(), start):
                self.codes[i] = code
                self.details[i] = detail if one else detail[j]
                self.steps[i] = self.step

    def size(self, amount: Amount, n: int, *, of_all: bool, what: str = "top") -> int:
        """How many of `n` rows a sized selector keeps (`amount` resolved, at most `n`); a share also says
        what it was a share of, in `shares` ("top 25% of the 291 rows with ifd <= 1"), for the run's summary
        line."""
        size = amount.resolve(n, clamp=True)
        if amount.is_share:
            self.shares.append(f"{what} {amount.value * 100:g}% of {self._base(n, of_all)}")
        return size

    def _base(self, n: int, of_all: bool) -> str:
        """The `n` rows a ratio was taken of, in words: all rows, or those the steps before it kept."""
        if of_all:
            return f"all {n} rows"
        conditions: dict[str, None] = {}  # "fails ifd <= 1" -> "ifd <= 1", in order
        others: dict[str, None] = {}  # steps that dropped rows for other reasons
        for code, step in Counter(zip(self.codes, self.steps, strict=True)):
            if code is None or code == "not scored":
                continue
            if code.startswith("fails "):
                conditions[code.removeprefix("fails ")] = None
            else:
                others[step or code] = None
        if not conditions and not others:
            return f"the {n} rows kept"
        if not others:
            return f"the {n} rows with {' and '.join(conditions)}"
        return f"the {n} rows left after {', '.join([*conditions, *others])}"

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    def ranked(self) -> list[int]:
        """The kept rows in rank order (rows no ranker ranked after the ranked ones, by row): the order a
        token budget fills (`select --budget-tokens`, `compare`)."""
        return sorted(self.kept.tolist(), key=lambda i: (self.rank.get(i, np.inf), i))

    @property
    def reasons(self) -> list[str | None]:
        """Each row's reason as one line, `code (detail)`; None for a kept row."""
        return [
            None if c is None else (f"{c} ({d})" if d else c) for c, d in zip(self.codes, self.details, strict=True)
        ]

    def reason(self, i: int) -> dict[str, str | None] | None:
        """Row i's reason as data: {step, code, detail}, or None when it is kept."""
        if self.codes[i] is None:
            return None
        return {"step": self.steps[i], "code": self.codes[i], "detail": self.details[i]}

    def reason_counts(self) -> Counter[str]:
        """Dropped rows by reason code: `fails ifd <= 1`, `not in the top 8 by ifd`."""
        return Counter(c for c in self.codes if c is not None)


class Selector(Protocol):
    """What every selector has. A sized one also declares its size as `amount` (a `size.Amount` of rows or
    tokens, or None): `size.Sized` for a `ratio` / `k`, `TokenBudget` for tokens."""

    def apply(self, table: Any, selection: Selection) -> None: ...

    def describe(self) -> str: ...


def column(table: Any, name: str) -> np.ndarray:
    """A numeric score column as float64, nulls as NaN (callers drop those with a reason)."""
    if name not in table.column_names:
        raise MissingColumnError(f"the score table has no column {name!r} (columns: {', '.join(table.column_names)})")
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def drop_unscored(table: Any, selection: Selection, names: Sequence[str]) -> None:
    """Drop rows where a needed score is missing, with the scorer's own reason when it gave one."""
    from ..scoring.table import reason_columns

    declared = reason_columns(table)
    for name in names:
        values = column(table, name)
        reason_col = declared.get(name)  # the reason column its scorer declared for it
        missing = np.flatnonzero(selection.keep & np.isnan(values))
        why = table.column(reason_col).take(missing).to_pylist() if reason_col else [None] * len(missing)
        selection.drop(missing, "not scored", [w or f"no {name}" for w in why])


def select(table: Any, selectors: Sequence[Selector], names: Sequence[str] | None = None) -> Selection:
    """Run selectors in order over the score table; `names` label each one's drops (default: its class)."""
    selection = Selection.all(table.num_rows)
    for j, selector in enumerate(selectors):
        selection.step = names[j] if names else type(selector).__name__
        selector.apply(table, selection)
    selection.step = None
    return selection
