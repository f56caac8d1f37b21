"""Top-k / top-ratio by a score column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import ColumnRef, register
from .base import Selection, column, drop_unscored
from .size import Sized


@register("select", "top")
@dataclass
class Top(Sized):
    """Keep the `k` (or `ratio`) highest rows by `column` among those still kept.

    `of="kept"` takes the ratio of the rows still kept (Cherry LLM: after dropping IFD > 1);
    `of="all"` takes it of every input row (Superfiltering). Ties go to the earlier row.
    """

    column: ColumnRef
    ratio: float | None = None
    k: int | None = None
    of: str = "kept"
    descending: bool = True

    def __post_init__(self) -> None:
        _ = self.amount  # checked when built

    def ranking(self) -> tuple[str, bool]:
        """The score column this selector ranks by, and whether highest first."""
        return self.column, self.descending

    def describe(self) -> str:
        return (
            f"top {self.amount.describe(self.of)} by {self.column} ({'highest' if self.descending else 'lowest'} first)"
        )

    def apply(self, table: Any, selection: Selection) -> None:
        n_all = table.num_rows
        drop_unscored(table, selection, [self.column])
        candidates = selection.kept
        n = selection.size(self.amount, n_all if self.of == "all" else len(candidates), of_all=self.of == "all")
        values = column(table, self.column)[candidates]
        order = np.lexsort((candidates, -values if self.descending else values))
        ranked = candidates[order]
        for rank, i in enumerate(ranked[:n].tolist(), start=1):
            selection.rank[i] = rank
        rest = ranked[n:]
        what = f"not in the top {n} by {self.column}"
        selection.drop(rest, what, [f"{self.column} = {v:.4g}" for v in column(table, self.column)[rest]])
