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


@dataclass
class Selection:
    """`keep[i]` for row i of the score table; `reasons[i]` says why a dropped row was dropped."""

    keep: np.ndarray
    reasons: list[str | None]
    rank: dict[int, int] = field(default_factory=dict)  # row position -> 1-based rank where a ranker set one

    @classmethod
    def all(cls, n: int) -> Selection:
        return cls(np.ones(n, dtype=bool), [None] * n)

    def drop(self, positions: Any, reason: str | Sequence[str]) -> None:
        for j, i in enumerate(np.asarray(positions, dtype=np.int64).tolist()):
            self.keep[i] = False
            self.reasons[i] = reason if isinstance(reason, str) else reason[j]

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    def reason_counts(self) -> Counter[str]:
        """Dropped rows by reason, with the per-row values stripped: `ifd > 1`, `not in top k`."""
        return Counter(r.split(" (")[0] for r in self.reasons if r is not None)


class Selector(Protocol):
    def apply(self, table: Any, selection: Selection) -> None: ...

    def describe(self) -> str: ...


def column(table: Any, name: str) -> np.ndarray:
    """A numeric score column as float64, nulls as NaN (callers drop those with a reason)."""
    if name not in table.column_names:
        raise MissingColumnError(f"the score table has no column {name!r} (columns: {', '.join(table.column_names)})")
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def drop_unscored(table: Any, selection: Selection, names: Sequence[str]) -> None:
    """Drop rows where a needed score is missing, with the scorer's own reason when it gave one."""
    for name in names:
        values = column(table, name)
        reason_col = next((c for c in (f"{name}_reason", "reason") if c in table.column_names), None)
        why = table.column(reason_col).to_pylist() if reason_col else [None] * table.num_rows
        missing = np.flatnonzero(selection.keep & np.isnan(values))
        selection.drop(missing, [f"not scored ({why[i] or f'no {name}'})" for i in missing])


def select(table: Any, selectors: Sequence[Selector]) -> Selection:
    """Run selectors in order over the score table."""
    selection = Selection.all(table.num_rows)
    for selector in selectors:
        selector.apply(table, selection)
    return selection
