"""K-Means, then a fixed number of examples from every cluster.

Cherry LLM's pre-experience sample (Li et al., 2024, "From Quantity to Quality", NAACL): cluster the
instruction embeddings into 100 clusters with K-Means and take 10 examples from each, spread evenly
over the middle of the cluster's perplexity range. Without a score, the examples are drawn at random.

The function, for callers without a score table (e.g. Cherry's pre-experience phase):

    kmeans_sample(vectors, n_clusters, per_cluster, scores=None, band=(1.0, 99.0), seed=0) -> np.ndarray

returns the chosen row indices (ascending): exactly `per_cluster` from every cluster that has that
many rows, and all rows of a smaller cluster. With `scores`, a cluster's rows whose score lies within
its `band` percentiles (inclusive, as Cherry LLM's `np.percentile` thresholds; its released script uses
1 and 99) are sorted by score and taken at evenly spaced ranks; when the band holds fewer than
`per_cluster`, the rest are the rows outside the band nearest to it in rank. Without `scores`,
`per_cluster` rows are drawn at random with `seed`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import OptionError
from ..registry import ColumnRef, OptionalColumnRef, register
from .base import Selection, column
from .vectors import kept_vectors

MINIBATCH_ROWS = 100_000  # above this many rows, `algorithm="auto"` uses MiniBatchKMeans


def kmeans_fit(vectors: np.ndarray, n_clusters: int, seed: int = 0, algorithm: str = "auto") -> Any:
    """A fitted scikit-learn KMeans (or MiniBatchKMeans above MINIBATCH_ROWS rows / on request)."""
    X = np.asarray(vectors, dtype=np.float32)
    if X.ndim != 2 or len(X) == 0:
        raise OptionError(f"vectors must be a non-empty 2-d array, got shape {X.shape}")
    if not 1 <= n_clusters <= len(X):
        raise OptionError(f"cannot make {n_clusters} clusters from {len(X)} rows: use 1 to {len(X)} clusters")
    if algorithm not in ("auto", "kmeans", "minibatch"):
        raise OptionError(f"algorithm must be auto, kmeans or minibatch, got {algorithm!r}")
    if algorithm == "minibatch" or (algorithm == "auto" and len(X) > MINIBATCH_ROWS):
        from sklearn.cluster import MiniBatchKMeans

        return MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=3, batch_size=4096).fit(X)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, random_state=seed, n_init=1).fit(X)


def _evenly(members: np.ndarray, values: np.ndarray, n: int, band: tuple[float, float]) -> np.ndarray:
    """`n` of `members` (n <= len) at evenly spaced score ranks within the percentile band."""
    lo, hi = np.percentile(values, band)
    order = np.argsort(values, kind="stable")  # ranks, lowest score first
    inside = (values[order] >= lo) & (values[order] <= hi)
    band_ranks = np.flatnonzero(inside)
    if len(band_ranks) >= n:
        if n == 1:  # the middle of the band
            pos = np.array([(len(band_ranks) - 1) // 2])
        else:  # evenly spaced over the band, ends included; a spacing >= 1 keeps them distinct
            pos = np.floor(np.linspace(0, len(band_ranks) - 1, n) + 0.5).astype(np.int64)
        ranks = band_ranks[pos]
    else:
        centre = band_ranks.mean() if len(band_ranks) else (len(values) - 1) / 2
        outside = np.flatnonzero(~inside)
        nearest_out = outside[np.argsort(np.abs(outside - centre), kind="stable")][: n - len(band_ranks)]
        ranks = np.concatenate([band_ranks, nearest_out])
    return members[order[ranks]]


def kmeans_sample(
    vectors: np.ndarray,
    n_clusters: int,
    per_cluster: int,
    scores: np.ndarray | None = None,
    band: tuple[float, float] = (1.0, 99.0),
    seed: int = 0,
    *,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Row indices (ascending) of `per_cluster` rows from each of `n_clusters` K-Means clusters.

    See the module docstring. `labels` skips the clustering and uses these cluster labels instead.
    """
    X = np.asarray(vectors, dtype=np.float32)
    n = len(X)
    if per_cluster < 1:
        raise OptionError(f"per_cluster must be at least 1, got {per_cluster}")
    lo, hi = band
    if not 0.0 <= lo <= hi <= 100.0:
        raise OptionError(f"band must be percentiles 0 <= lo <= hi <= 100, got {band}")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (n,):
            raise OptionError(f"scores has shape {scores.shape}, expected ({n},) like the vectors")
        if not np.isfinite(scores).all():
            bad = np.flatnonzero(~np.isfinite(scores))
            raise OptionError(f"scores must be finite; rows {bad[:10].tolist()} are not")
    if labels is None:
        labels = kmeans_fit(X, n_clusters, seed).labels_
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) <= per_cluster:
            picked.append(members)
        elif scores is None:
            picked.append(rng.choice(members, per_cluster, replace=False))
        else:
            picked.append(_evenly(members, scores[members], per_cluster, band))
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


@register("select", "kmeans_sample")
@dataclass
class KMeansSample:
    """Cluster the kept rows' `column` vectors into `n_clusters` and keep `per_cluster` of each.

    With `score` (a score column, e.g. a perplexity), the kept rows of a cluster are spread evenly over
    its `band` percentiles of that score (Cherry LLM); without it they are drawn at random with `seed`.
    A cluster smaller than `per_cluster` is kept whole, so the total can fall short of
    n_clusters x per_cluster. `n_clusters` larger than the rows left is an error.
    """

    column: ColumnRef = "embedding"
    n_clusters: int = 100
    per_cluster: int = 10
    score: OptionalColumnRef = None
    band: tuple[float, float] = (1.0, 99.0)
    seed: int = 0
    max_fraction: float | None = None  # scale clusters x per_cluster down to at most this share of the rows

    def __post_init__(self) -> None:
        if self.n_clusters < 1 or self.per_cluster < 1:
            raise OptionError("n_clusters and per_cluster must be at least 1")
        if self.max_fraction is not None and not 0 < self.max_fraction <= 1:
            raise OptionError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        self.band = (float(self.band[0]), float(self.band[1]))

    def describe(self) -> str:
        how = (
            f"evenly over the {self.band[0]:g}-{self.band[1]:g} percentiles of {self.score}"
            if self.score
            else "at random"
        )
        return f"K-Means {self.n_clusters} clusters of {self.column}, {self.per_cluster} per cluster {how}"

    def sizes(self, n: int) -> tuple[int, int]:
        """(clusters, per cluster) for `n` rows: as asked, or with `max_fraction` fewer clusters (and, when
        even one cluster's worth is too many, fewer per cluster) so that the sample fits that share."""
        if self.max_fraction is None:
            return self.n_clusters, self.per_cluster
        room = int(n * self.max_fraction)
        if room < 1:
            raise OptionError(f"K-Means sample: {n} rows leave no room for a sample of {self.max_fraction:g} of them")
        per = min(self.per_cluster, room)
        return max(1, min(self.n_clusters, room // per)), per

    def apply(self, table: Any, selection: Selection) -> None:
        self.n_clusters_, self.per_cluster_ = n_clusters, per_cluster = self.sizes(len(selection.kept))
        if self.score is not None:
            values = column(table, self.score)
            missing = np.flatnonzero(selection.keep & ~np.isfinite(values))
            selection.drop(missing, "not scored", f"no {self.score}")
        rows, X = kept_vectors(table, selection, self.column)
        if n_clusters > len(rows):
            raise OptionError(f"K-Means: {n_clusters} clusters asked for but only {len(rows)} rows are left")
        labels = kmeans_fit(X, n_clusters, self.seed).labels_
        scores = column(table, self.score)[rows] if self.score is not None else None
        picked = kmeans_sample(X, n_clusters, per_cluster, scores, self.band, self.seed, labels=labels)
        keep = np.zeros(len(rows), dtype=bool)
        keep[picked] = True
        ids, sizes = np.unique(labels, return_counts=True)
        self.labels_ = labels
        self.short_clusters_ = {int(c): int(m) for c, m in zip(ids, sizes, strict=True) if m < per_cluster}
        if self.short_clusters_:
            warnings.warn(
                f"{len(self.short_clusters_)} of {n_clusters} K-Means clusters have fewer than "
                f"{per_cluster} rows and are kept whole: {len(picked)} rows instead of "
                f"{n_clusters * per_cluster}",
                stacklevel=2,
            )
        drop = np.flatnonzero(~keep)
        selection.drop(
            rows[drop],
            f"not among the {per_cluster} sampled from its K-Means cluster",
            [f"cluster {int(labels[i])}" for i in drop],
        )
