"""Facility-location diversity: choose k rows that together best represent all of them.

f(S) = sum over rows i of max over chosen j of sim(i, j), maximised by lazy greedy (Minoux, 1978), which
picks exactly what plain greedy picks and so keeps its (1 - 1/e) guarantee for this monotone
submodular f (Nemhauser, Wolsey & Fisher, 1978). Superfiltering.D (Li et al., 2024, "Superfiltering:
Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL) runs it on sentence embeddings of the
pool that IFD keeps.

sim(i, j) = (1 + cos(i, j)) / 2, in [0, 1] (= 1 - |x_i - x_j|^2 / 4 for unit vectors). Up to
DENSE_LIMIT rows the full n x n matrix is used (n^2 float32: 400 MB at 10,000 rows); beyond it, a
sparse k-nearest-neighbour graph (scikit-learn NearestNeighbors), where a row is represented only by
its `n_neighbors` nearest rows. Hand-rolled rather than apricot/submodlib: the lazy greedy is a few
lines over numpy/scipy, and those packages are unmaintained or not on PyPI.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import OptionError, check_at_least
from ..registry import ColumnRef, register
from .base import Selection
from .size import Sized
from .vectors import check_choice, kept_vectors, l2_normalise

DENSE_LIMIT = 10_000
N_NEIGHBORS = 64


def similarity_graph(vectors: np.ndarray, dense_limit: int = DENSE_LIMIT, n_neighbors: int = N_NEIGHBORS) -> Any:
    """The n x n similarity matrix (dense ndarray up to `dense_limit` rows, else a scipy CSC k-NN graph)."""
    X = l2_normalise(np.asarray(vectors, dtype=np.float32))
    n = len(X)
    if n <= dense_limit:
        S = X @ X.T
        S += 1.0
        S *= 0.5
        np.clip(S, 0.0, 1.0, out=S)
        return S
    from scipy.sparse import csr_matrix
    from sklearn.neighbors import NearestNeighbors

    k = min(n, n_neighbors)
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(X)
    sim = np.clip(1.0 - dist.astype(np.float32) ** 2 / 4.0, 0.0, 1.0)
    # row i holds sim(i, j) for i's neighbours j; column j then lists the rows that j can represent
    graph = csr_matrix((sim.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    return graph.tocsc()


def facility_location(
    vectors: np.ndarray, k: int, *, dense_limit: int = DENSE_LIMIT, n_neighbors: int = N_NEIGHBORS
) -> np.ndarray:
    """Indices of k rows chosen by lazy greedy on the facility-location function, in the order chosen."""
    X = np.asarray(vectors, dtype=np.float32)
    check_choice(X, k)
    return lazy_greedy(similarity_graph(X, dense_limit, n_neighbors), k)


def _column(S: Any, j: int) -> tuple[np.ndarray | slice, np.ndarray]:
    if isinstance(S, np.ndarray):
        return slice(None), S[j]  # the dense matrix is symmetric: a contiguous row is the column
    lo, hi = S.indptr[j], S.indptr[j + 1]
    return S.indices[lo:hi], S.data[lo:hi]


def lazy_greedy(S: Any, k: int) -> np.ndarray:
    """Greedy maximisation of sum_i max_{j in chosen} S[i, j] with lazily re-evaluated gains.

    Gains only shrink as rows are chosen, so a stale gain is an upper bound: a row whose fresh gain is
    still at least the next stale one is the greedy choice (ties: the lower index).
    """
    n = S.shape[0]
    cover = np.zeros(n, dtype=np.float32)  # how well each row is represented so far
    gains = np.asarray(S.sum(axis=0), dtype=np.float64).ravel()  # all of f({j}) at once
    heap = [(-g, j) for j, g in enumerate(gains.tolist())]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < k:
        _, j = heapq.heappop(heap)
        rows, col = _column(S, j)
        gain = float(np.maximum(col - cover[rows], 0.0).sum(dtype=np.float64))
        if not heap or (-gain, j) <= heap[0]:
            chosen.append(j)
            cover[rows] = np.maximum(cover[rows], col)
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(chosen, dtype=np.int64)


def objective(S: Any, chosen: np.ndarray) -> float:
    """f(chosen) = sum over rows of their best similarity to a chosen row."""
    if len(chosen) == 0:
        return 0.0
    if isinstance(S, np.ndarray):
        return float(S[:, chosen].max(axis=1).sum(dtype=np.float64))
    return float(np.asarray(S[:, chosen].max(axis=1).todense()).sum(dtype=np.float64))


@register("select", "facility_location")
@dataclass
class FacilityLocation(Sized):
    """Keep `k` (or `ratio`) of the kept rows by facility location on an embedding column.

    Dense similarities up to `dense_limit` kept rows, a sparse `n_neighbors`-NN graph beyond. `of` is
    as in `Top` (Superfiltering.D: a ratio of the whole data set). The greedy order becomes the rank.
    """

    column: ColumnRef = "embedding"
    ratio: float | None = None
    k: int | None = None
    of: str = "kept"
    dense_limit: int = DENSE_LIMIT
    n_neighbors: int = N_NEIGHBORS

    def __post_init__(self) -> None:
        check_at_least(self, n_neighbors=1)
        _ = self.amount  # checked when built

    def describe(self) -> str:
        return f"facility location (lazy greedy): {self.amount.describe(self.of)} rows by {self.column}"

    def apply(self, table: Any, selection: Selection) -> None:
        rows, X = kept_vectors(table, selection, self.column)
        if self.k is not None and self.k > len(rows):
            raise OptionError(f"facility location: asked for {self.k} rows but only {len(rows)} are left")
        n = table.num_rows if self.of == "all" else len(rows)
        k = min(len(rows), selection.size(self.amount, n, of_all=self.of == "all", what="facility location"))
        if k == 0:
            selection.drop(rows, "not chosen by facility location", "nothing to choose")
            return
        picked = rows[facility_location(X, k, dense_limit=self.dense_limit, n_neighbors=self.n_neighbors)]
        for rank, i in enumerate(picked.tolist(), start=1):
            selection.rank[i] = rank
        selection.drop(np.setdiff1d(rows, picked), f"not among the {k} facility-location picks by {self.column}")
