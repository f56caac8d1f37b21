"""Stratified selection: up to `per` rows of every category (or K-Means cluster), best first.

LIMA (Zhou et al., NeurIPS 2023, "LIMA: Less Is More for Alignment", section 2.1) samples its training
set across many sources and topics, taking the top-rated answer within each: quality inside a stratum,
diversity across strata. `Stratified` does that over the score table: strata are the values of a
column (a record field such as Dolly's `category`, which `api.select` copies from the records since
selectors only read the table; see `record_fields`), or K-Means clusters of an embedding column when
the data has no categories. Within a stratum rows are ranked by any score column, highest first (or
lowest with `descending=False`), ties to the earlier row; without a score they are drawn at random
with `seed`. The kept rows' `rank` is their place within their stratum.

With a total (`k` or `ratio`) the strata share it evenly: every stratum's best row first, then every
stratum's second best, and so on (ties within a round go to the higher score), so a small category
gives what it has and the large ones fill the rest; `rank` is then the place in that order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import MissingColumnError, OptionError, check_at_least
from ..registry import OptionalColumnRef, register
from .base import Selection, column, drop_unscored
from .size import Amount, rows


def _label(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


@register("select", "stratified")
@dataclass
class Stratified:
    """Keep up to `per` of the kept rows in each stratum of `by` (or of `clusters` K-Means clusters of the
    `on` vectors when `by` is None), best first by `rank`; and/or `k` (or `ratio` of the kept rows) in
    all, spread evenly over the strata (a ratio of the rows that reach this selector with a stratum and a
    score). Rows without a stratum are dropped.

    After `apply`: `strata_` maps each stratum to (kept, candidates)."""

    per: int | None = None
    by: str | None = "category"
    rank: OptionalColumnRef = None
    descending: bool = True
    clusters: int | None = None
    on: str = "embedding"
    seed: int = 0
    k: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.per is None and self.k is None and self.ratio is None:
            raise OptionError("stratified needs per (rows per stratum) and/or a total (k or ratio)")
        check_at_least(self, per=1)
        rows(self.ratio, self.k, optional=True)  # validate early
        if self.by is None and self.clusters is None:
            raise OptionError("stratified needs a category column (by=...) or a number of K-Means clusters")
        check_at_least(self, clusters=1)

    @property
    def record_fields(self) -> tuple[str, ...]:
        """Record fields this selector reads when the score table lacks them (`api.select` adds them)."""
        return (self.by,) if self.by else ()

    @property
    def amount(self) -> Amount | None:
        """The total (`k` or `ratio` of the kept rows) spread over the strata, if any."""
        return rows(self.ratio, self.k, optional=True)

    @property
    def _stratum(self) -> str:
        return self.by if self.by else "K-Means cluster"

    def ranking(self) -> tuple[str, bool] | None:
        """The score column this selector ranks by, and whether highest first (None: no score)."""
        return (self.rank, self.descending) if self.rank else None

    def describe(self) -> str:
        what = f"each {self.by}" if self.by else f"each of {self.clusters} K-Means clusters of {self.on}"
        how = f"by {self.rank} ({'highest' if self.descending else 'lowest'} first)" if self.rank else "at random"
        size = [f"up to {self.per} from {what}"] if self.per else []
        if (amount := self.amount) is not None:
            total = amount.describe("the kept rows")
            size.append(f"{total} in all, spread evenly over {what.removeprefix('each ')}")
        return ", ".join(size) + f", {how}"

    def _labels(self, table: Any, selection: Selection) -> list[str | None]:
        if self.by is not None:
            if self.by not in table.column_names:
                raise MissingColumnError(
                    f"no column {self.by!r} to stratify by: neither the score table nor the records have it "
                    f"(columns: {', '.join(table.column_names)})"
                )
            labels = [_label(v) for v in table.column(self.by).to_pylist()]
            missing = [i for i in selection.kept.tolist() if labels[i] is None]
            selection.drop(missing, f"no {self.by}")
            return labels
        from .cluster import kmeans_fit
        from .vectors import kept_vectors

        rows, vectors = kept_vectors(table, selection, self.on)
        if self.clusters > len(rows):
            raise OptionError(f"stratified: {self.clusters} clusters asked for but only {len(rows)} rows are left")
        fitted = kmeans_fit(vectors, self.clusters, self.seed).labels_
        labels: list[str | None] = [None] * table.num_rows
        for r, c in zip(rows.tolist(), fitted.tolist(), strict=True):
            labels[r] = str(c)
        return labels

    def apply(self, table: Any, selection: Selection) -> None:
        labels = self._labels(table, selection)
        values = None
        if self.rank is not None:
            drop_unscored(table, selection, [self.rank])
            values = column(table, self.rank)
        groups: dict[str, list[int]] = {}
        for i in selection.kept.tolist():
            groups.setdefault(labels[i], []).append(i)
        rng = np.random.default_rng(self.seed)
        per = self.per or max((len(m) for m in groups.values()), default=0)
        self.strata_: dict[str, tuple[int, int]] = {}
        place: dict[int, int] = {}  # row -> its 1-based place within its stratum
        for label, members in groups.items():
            idx = np.asarray(members, dtype=np.int64)
            if values is None:
                order = idx[rng.permutation(len(idx))]
            else:
                v = values[idx]
                order = idx[np.lexsort((idx, -v if self.descending else v))]
            for p, i in enumerate(order[:per].tolist(), start=1):
                place[i] = selection.rank[i] = p
            rest = order[per:]
            self.strata_[label] = (min(per, len(idx)), len(idx))
            where = f"{self._stratum} {label}"
            if values is None:
                selection.drop(rest, f"not among {per} sampled per {self._stratum}", where)
            else:
                details = [f"{where}, {self.rank} = {values[i]:.4g}" for i in rest.tolist()]
                selection.drop(rest, f"not in the top {per} per {self._stratum} by {self.rank}", details)
        if (amount := self.amount) is not None:
            total = sum(len(m) for m in groups.values())
            n = min(selection.size(amount, total, of_all=False, what="stratified"), len(place))
            self._spread(n, place, labels, values, selection, rng)

    def _spread(self, n: int, place: dict[int, int], labels: list, values: Any, selection: Selection, rng: Any) -> None:
        """Cut to `n`: round by round over the strata (each one's best, then each one's second ...)."""
        rows = np.asarray(sorted(place), dtype=np.int64)
        places = np.asarray([place[i] for i in rows.tolist()], dtype=np.int64)
        if values is None:
            within = rng.permutation(len(rows))
        else:
            v = values[rows]
            within = -v if self.descending else v
        order = rows[np.lexsort((rows, within, places))]
        for r, i in enumerate(order[:n].tolist(), start=1):
            selection.rank[i] = r
        rest = order[n:]
        per_label = Counter(labels[i] for i in order[:n].tolist())
        for label, (_kept, candidates) in self.strata_.items():
            self.strata_[label] = (per_label[label], candidates)
        selection.drop(
            rest,
            f"not among the {n} spread evenly by {self._stratum}",
            [f"{self._stratum} {labels[i]}, place {place[i]} in it" for i in rest.tolist()],
        )
