"""What a run could use: which rows have every score, and when a result is empty for lack of data.

A row is unscored when a score column is missing (null) or its reason column says why. Which columns are
scores, and which column gives each one's reason, is what each scorer declares (`Scorer.columns`, kept in
the score table's metadata; `scoring.table.reason_columns`): never guessed from the columns' names. A row
an earlier step had dropped was not given to a later scorer: it is unscored (it has no score) but not
counted as that scorer's miss (`NOT_SCORED`).

Empty results (documented in the README, "Empty results"):
- nothing could be read (every row rejected) or nothing could be scored (every row unscored): an
  `EmptyResultError` (exit 1) naming the reason, and no data output is written, unless `allow_empty`;
- every row was scored but the selection kept none (the user's own threshold or rules): a valid result,
  written, with a warning.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .data.errors import EmptyResultError, literal

NOT_SCORED = "not scored: dropped before this step"  # the reason of a row a scorer was not given


def _missing(table: Any) -> list[tuple[str, Any, list[str]]]:
    """For each group of score columns (one reason column): its label, a numpy mask of the rows missing a
    score (a null score, or a reason given) and, for those rows in order, why (the reason, or "missing")."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from .scoring.table import reason_groups

    out = []
    for label, reason, names in reason_groups(table):
        why = table.column(reason)
        gone = pc.is_null(table.column(names[0]))
        for name in names[1:]:
            gone = pc.or_(gone, pc.is_null(table.column(name)))
        said = pc.fill_null(pc.not_equal(why, ""), False)
        mask = np.asarray(pc.or_(gone, said).to_numpy(zero_copy_only=False), dtype=bool)
        reasons = [w or "missing" for w in pc.filter(why, pa.array(mask)).to_pylist()]
        out.append((label, mask, reasons))
    return out


def unscored_mask(table: Any) -> list[bool]:
    """Per row: whether some score is missing."""
    import numpy as np

    out = np.zeros(table.num_rows, dtype=bool)
    for _, mask, _ in _missing(table):
        out |= mask
    return out.tolist()


def missing_by_scorer(table: Any) -> list[tuple[str, int, Counter[str]]]:
    """For each scorer's scores (a group sharing a reason column): its label, how many rows it was given,
    and the rows it could not score by reason (the reason's first part). A row an earlier step had
    dropped was not given to the scorer: not counted."""
    out = []
    for label, _, reasons in _missing(table):
        missed = Counter(w.split(":")[0] for w in reasons if w != NOT_SCORED)
        out.append((label, table.num_rows - reasons.count(NOT_SCORED), missed))
    return out


def missing_reasons(table: Any, limit: int = 3) -> str:
    """The most common reasons rows are unscored, e.g. 'judge: no reply: 20'."""
    counts: Counter[str] = Counter()
    for label, _, reasons in _missing(table):
        counts.update(f"{label}: {w.split(':')[0]}" for w in reasons)
    text = "; ".join(f"{k}: {v}" for k, v in counts.most_common(limit))
    return text + ("; ..." if len(counts) > limit else "")


def check_not_empty(dataset: Any, table: Any | None = None, *, allow_empty: bool = False) -> None:
    """Raise `EmptyResultError` when nothing could be read, or (given the score table) nothing scored."""
    if allow_empty:
        return
    if not dataset.examples:
        first = dataset.rejects[0] if dataset.rejects else None
        raise EmptyResultError(
            literal(f"{dataset.path}: nothing could be read: all {dataset.n_read} rows were rejected "
                    f"(first: {first.where()}: {first.reason}); ")
            + "see the rejects file, or pass {allow_empty} to write an empty result"
            if first
            else literal(f"{dataset.path}: no rows to use; ") + "pass {allow_empty} to write an empty result",
            allow_empty=True,
        )  # fmt: skip
    if table is not None and table.num_rows and all(unscored_mask(table)):
        raise EmptyResultError(
            literal(f"{dataset.path}: no row could be scored ({missing_reasons(table)}); ")
            + "nothing was written; pass {allow_empty} to write an empty result",
            allow_empty=True,
        )
