"""diverse-top: the best-scored rows, skipping any too similar to one already kept.

DEITA's "Repr Filter" (Liu et al., 2024, "What Makes Good Data for Alignment? A Comprehensive Study of
Automatic Data Selection in Instruction Tuning", ICLR): walk the examples by score, highest first, and
add one unless its cosine similarity to its nearest neighbour among those already added exceeds a
threshold (0.9 in the paper), until the budget is met.

The walk is sequential by nature; it runs in chunks: one GEMM gives a chunk's similarities to
everything kept before it, and only the rows that pass it are checked against each other in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.errors import OptionError
from ..registry import ColumnRef, register
from .base import Selection, column, drop_unscored
from .size import Sized
from .vectors import kept_vectors, l2_normalise

CHUNK = 1024


def diverse_top(vectors: np.ndarray, order: np.ndarray, threshold: float = 0.9, k: int | None = None) -> np.ndarray:
    """Rows of `vectors` kept by the walk over `order` (best first), in the order kept.

    A row is kept unless its cosine similarity to a row kept before it is > `threshold`; the walk
    stops after `k` rows (all of `order` when k is None).
    """
    X = l2_normalise(np.asarray(vectors, dtype=np.float32))
    order = np.asarray(order, dtype=np.int64)
    if not -1.0 <= threshold <= 1.0:
        raise OptionError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    limit = len(order) if k is None else k
    kept: list[int] = []
    kept_vecs = np.empty((min(limit, len(order)), X.shape[1]), dtype=np.float32)
    for lo in range(0, len(order), CHUNK):
        if len(kept) >= limit:
            break
        part = order[lo : lo + CHUNK]
        P = X[part]
        # the chunk against everything kept before it, in blocks of kept rows
        ok = np.ones(len(part), dtype=bool)
        for b in range(0, len(kept), 4 * CHUNK):
            nearest = (P @ kept_vecs[b : min(len(kept), b + 4 * CHUNK)].T).max(axis=1)
            ok &= nearest <= threshold
        cand = np.flatnonzero(ok)
        within = P[cand] @ P[cand].T  # the survivors against each other, resolved in walk order
        taken: list[int] = []
        for a in range(len(cand)):
            if len(kept) >= limit:
                break
            if taken and within[a, taken].max() > threshold:
                continue
            taken.append(a)
            kept_vecs[len(kept)] = P[cand[a]]
            kept.append(int(part[cand[a]]))
    return np.asarray(kept, dtype=np.int64)


@register("select", "diverse_top")
@dataclass
class DiverseTop(Sized):
    """Walk the kept rows by `score` (highest first unless `descending=False`), keeping one unless its
    cosine similarity on `column` to a row kept earlier exceeds `threshold`; stop at `k` (or `ratio`),
    or keep every row that passes when neither is given. Ties go to the earlier row."""

    size_optional: ClassVar[bool] = True  # no size: keep every row it ranks

    score: ColumnRef
    column: ColumnRef = "embedding"
    threshold: float = 0.9
    ratio: float | None = None
    k: int | None = None
    of: str = "kept"
    descending: bool = True

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise OptionError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        _ = self.amount  # checked when built

    def ranking(self) -> tuple[str, bool]:
        """The score column this selector ranks by, and whether highest first."""
        return self.score, self.descending

    def describe(self) -> str:
        size = "" if (a := self.amount) is None else f", up to {a.describe(self.of)}"
        return f"diverse-top by {self.score}: skip cosine > {self.threshold:g} to a kept row ({self.column}){size}"

    def apply(self, table: Any, selection: Selection) -> None:
        drop_unscored(table, selection, [self.score])
        rows, X = kept_vectors(table, selection, self.column)
        k = None
        if (amount := self.amount) is not None:
            k = selection.size(
                amount,
                table.num_rows if self.of == "all" else len(rows),
                of_all=self.of == "all",
                what="diverse top",
            )
        values = column(table, self.score)[rows]
        order = np.lexsort((rows, -values if self.descending else values))
        picked_local = diverse_top(X, order, self.threshold, k)
        picked = rows[picked_local]
        for rank, i in enumerate(picked.tolist(), start=1):
            selection.rank[i] = rank
        position = np.empty(len(rows), dtype=np.int64)
        position[order] = np.arange(len(rows))  # place of each row in the walk
        full = k is not None and len(picked_local) == k
        last = int(position[picked_local].max()) if len(picked_local) else -1
        rest = np.setdiff1d(np.arange(len(rows)), picked_local)
        similar = f"within cosine {self.threshold:g} of a better row by {self.column}"
        unreached = np.asarray([full and position[i] > last for i in rest.tolist()], dtype=bool)
        selection.drop(rows[rest[~unreached]], similar)
        selection.drop(rows[rest[unreached]], f"not reached: {k} rows kept first")
