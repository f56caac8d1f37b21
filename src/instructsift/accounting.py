"""What a run could use: which rows have every score, and when a result is empty for lack of data.

A row is unscored when any scorer could not score it: a `reason` / `<column>_reason` column says why, or
the column a `<column>_reason` explains is missing (null). Scorers always give a reason with a missing
score, so either test alone would do; both are checked so that neither can hide a missing score.

Empty results (documented in the README, "Empty results"):
- nothing could be read (every row rejected) or nothing could be scored (every row unscored): an
  `EmptyResultError` (exit 1) naming the reason, and no data output is written, unless `allow_empty`;
- every row was scored but the selection kept none (the user's own threshold or rules): a valid result,
  written, with a warning.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .data.errors import EmptyResultError


def reason_columns(table: Any) -> list[str]:
    """The table's `reason` and `<column>_reason` columns."""
    names = set(table.column_names)
    return [c for c in table.column_names if c == "reason" or (c.endswith("_reason") and c[: -len("_reason")] in names)]


def unscored_mask(table: Any) -> list[bool]:
    """Per row: whether some score is missing."""
    out = [False] * table.num_rows
    for col in reason_columns(table):
        reasons = table.column(col).to_pylist()
        values = table.column(col[: -len("_reason")]).to_pylist() if col != "reason" else [0] * table.num_rows
        for i, (why, value) in enumerate(zip(reasons, values, strict=True)):
            if why or value is None:
                out[i] = True
    return out


def missing_reasons(table: Any, limit: int = 3) -> str:
    """The most common reasons rows are unscored, e.g. 'judge: no reply: 20'."""
    counts: Counter[str] = Counter()
    for col in reason_columns(table):
        name = "ifd" if col == "reason" else col[: -len("_reason")]
        values = table.column(name).to_pylist() if name in table.column_names else [0] * table.num_rows
        for why, value in zip(table.column(col).to_pylist(), values, strict=True):
            if why or value is None:
                counts[f"{name}: {(why or 'missing').split(':')[0]}"] += 1
    text = "; ".join(f"{k}: {v}" for k, v in counts.most_common(limit))
    return text + ("; ..." if len(counts) > limit else "")


def check_not_empty(dataset: Any, table: Any | None = None, *, allow_empty: bool = False) -> None:
    """Raise `EmptyResultError` when nothing could be read, or (given the score table) nothing scored."""
    if allow_empty:
        return
    if not dataset.examples:
        raise EmptyResultError(
            f"{dataset.path}: nothing could be read: all {dataset.n_read} rows were rejected "
            f"(first: {dataset.rejects[0].where()}: {dataset.rejects[0].reason}); "
            "see the rejects file, or pass --allow-empty to write an empty result"
            if dataset.rejects
            else f"{dataset.path}: no rows to use; pass --allow-empty to write an empty result"
        )
    if table is not None and table.num_rows and all(unscored_mask(table)):
        raise EmptyResultError(
            f"{dataset.path}: no row could be scored ({missing_reasons(table)}); "
            "nothing was written; pass --allow-empty to write an empty result"
        )
