"""Greedy k-center coreset: repeatedly add the point farthest from everything chosen so far.

The farthest-first traversal of Gonzalez (1985) is a 2-approximation of the k-center problem; Sener &
Savarese (ICLR 2018, "Active Learning for Convolutional Neural Networks: A Core-Set Approach") use it as
a core-set, and LTD (Chen et al., 2023, "Maybe Only 0.5% Data is Needed: A Preliminary Exploration of
Low Training Data Instruction Tuning", arXiv:2305.09246) applies it to instruction embeddings, starting
from K-Means cluster centres.

`kcenter_greedy` returns exactly the greedy answer (Euclidean distance, first index on ties). The plain
loop reads all n x d numbers once per centre: a memory-bound matrix-vector product, ~5,000 passes over
the data for 5,000 centres. Here the next centres are guessed to be among the B = 64 rows now farthest
from the chosen set; one matrix-matrix product (GEMM, compute-bound) gives their distances to every
row, kept only where they beat a row's current distance (mind only falls, so no other entry can ever
matter). The greedy then runs exactly, an argmax per centre, until it wants a row without a line,
which computes the next batch; lines of rows still among the farthest are kept. Memory: the data, a
few n-vectors, and GEMM blocks of at most 8 MiB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import OptionError, check_at_least
from ..registry import ColumnRef, register
from .base import Selection
from .size import Sized
from .vectors import check_choice, kept_vectors

CHUNK_ROWS = 16384  # rows per block of distance work: 16384 x 384 float32 = 24 MiB
# |x|^2 + |c|^2 - 2 x.c in float32 leaves ~1e-7 x (|x|^2 + |c|^2) of noise: a squared distance below
# SAME times that is taken as 0, so exact duplicates are duplicates and not the farthest rows.
SAME = 1e-6


def nearest(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centre, squared distance to it) for every row of X, chunked GEMM."""
    X = np.asarray(X, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.float32)
    sq = np.einsum("ij,ij->i", X, X)
    c_sq = np.einsum("ij,ij->i", centres, centres)
    idx = np.empty(len(X), dtype=np.int64)
    dist = np.empty(len(X), dtype=np.float32)
    rows = max(1, min(CHUNK_ROWS, (1 << 23) // max(1, len(centres))))  # keep a block at <= 32 MiB
    for lo in range(0, len(X), rows):
        hi = min(len(X), lo + rows)
        d = X[lo:hi] @ centres.T
        d *= -2.0
        d += sq[lo:hi, None]
        d += c_sq[None, :]
        idx[lo:hi] = d.argmin(axis=1)
        dist[lo:hi] = d[np.arange(hi - lo), idx[lo:hi]]
    dist[dist < SAME * (sq + c_sq[idx])] = 0.0
    return idx, dist


def _batch_size(n: int) -> int:
    """Candidate rows whose lines are computed together: 64 (one GEMM of 64 x d x n)."""
    return 64


class _Lines:
    """For up to `size` candidate rows c, the rows x that c is closer to than their nearest centre.

    Lines are computed in batches by GEMM and kept sparse: the rows x with d(x, c)^2 < mind[x] at that
    time. mind only falls, so no other row can come closer to c later, and a pick touches only its
    line. Lines of rows that stay among the farthest are kept for the next batch.
    """

    def __init__(self, X: np.ndarray, sq: np.ndarray, mind: np.ndarray, size: int) -> None:
        self.X, self.sq, self.mind, self.n = X, sq, mind, len(X)
        self.owner = np.full(size, -1, dtype=np.int64)
        self.slot = np.full(self.n, -1, dtype=np.int32)  # slot[row] = its line, or -1
        self.rows: list[np.ndarray | None] = [None] * size
        self.dist: list[np.ndarray | None] = [None] * size
        self.step = max(1, min(self.n, (1 << 21) // size))  # columns per GEMM block (<= 8 MiB)

    def fill(self, top: np.ndarray) -> None:
        """Keep the lines of rows in `top`, drop the others, compute the missing ones."""
        keep = np.zeros(len(self.owner), dtype=bool)
        have = self.slot[top] >= 0
        keep[self.slot[top[have]]] = True
        self.slot[self.owner[~keep & (self.owner >= 0)]] = -1
        self.owner[~keep] = -1
        new = np.sort(top[~have])
        if len(new) == 0:
            return
        free = np.flatnonzero(~keep)[: len(new)]
        self.owner[free] = new
        self.slot[new] = free
        C = self.X[new]
        c_sq = self.sq[new]
        # d(x, c)^2 < mind[x]  <=>  dot(x, c) - (|x|^2 - mind[x]) / 2 > |c|^2 / 2
        half_gap = 0.5 * (self.sq - self.mind)
        half_gap[self.mind < 0] = np.inf  # chosen rows
        bar = (0.5 * c_sq)[:, None]
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in new]
        for lo in range(0, self.n, self.step):
            hi = min(self.n, lo + self.step)
            block = C @ self.X[lo:hi].T
            block -= half_gap[lo:hi]
            flat = np.flatnonzero(block > bar)  # sparse: faster than a 2-d nonzero
            if len(flat) == 0:
                continue
            r, x = np.divmod(flat, hi - lo)
            d = self.sq[x + lo] + c_sq[r] - 2.0 * (block.ravel()[flat] + half_gap[x + lo])
            d[d < SAME * (self.sq[x + lo] + c_sq[r])] = 0.0
            cuts = np.searchsorted(r, np.arange(1, len(new)))
            for line, (xs, ds) in enumerate(zip(np.split(x + lo, cuts), np.split(d, cuts), strict=True)):
                if len(xs):
                    parts[line].append((xs, ds))
        for line, s in enumerate(free.tolist()):
            got = parts[line]
            self.rows[s] = np.concatenate([p[0] for p in got]) if got else np.empty(0, dtype=np.int64)
            self.dist[s] = np.concatenate([p[1] for p in got]) if got else np.empty(0, dtype=np.float32)

    def pick(self, i: int) -> None:
        """Mark row i (which has a line) chosen and lower mind where it is now the nearest centre."""
        s = int(self.slot[i])
        self.slot[i] = -1
        self.owner[s] = -1
        rows, dist = self.rows[s], self.dist[s]
        self.rows[s] = self.dist[s] = None
        if rows is not None and len(rows):
            self.mind[rows] = np.minimum(self.mind[rows], dist)
        self.mind[i] = -1.0


def kcenter_greedy(vectors: np.ndarray, k: int, init: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Indices of k rows of `vectors` chosen by greedy k-center, in the order chosen.

    `init` are rows chosen first (default: row 0); the rest are added one by one, each the row farthest
    (Euclidean) from its nearest chosen row, the lowest index on ties. When every remaining row
    coincides with a chosen one, the remaining rows are taken in index order.
    """
    X = np.ascontiguousarray(vectors, dtype=np.float32)
    n = check_choice(X, k, "centres from {n} rows")
    start = np.asarray([0] if init is None else init, dtype=np.int64).ravel()
    if len(start) == 0:
        start = np.zeros(1, dtype=np.int64)
    if start.min() < 0 or start.max() >= n:
        raise OptionError(f"initial centres must be row indices in [0, {n}), got {start.tolist()}")
    if len(np.unique(start)) != len(start):
        raise OptionError("initial centres must be distinct rows")
    if len(start) > k:
        raise OptionError(f"{len(start)} initial centres are more than the k = {k} asked for")

    sq = np.einsum("ij,ij->i", X, X)
    chosen = np.empty(k, dtype=np.int64)
    chosen[: len(start)] = start
    _, mind = nearest(X, X[start])  # squared distance of every row to its nearest chosen row
    mind[start] = -1.0  # chosen rows are never picked again
    j = len(start)
    if j == k:
        return chosen
    size = min(_batch_size(n), n)
    lines = _Lines(X, sq, mind, size)
    while j < k:
        i = int(mind.argmax())
        if mind[i] <= 0.0:  # every remaining row coincides with a chosen one
            rest = np.flatnonzero(mind >= 0.0)[: k - j]
            chosen[j : j + len(rest)] = rest
            break
        if lines.slot[i] < 0:
            # The next centres are very likely among the rows now farthest from the chosen set: keep
            # the lines of the `size` farthest, computing the missing ones in one GEMM.
            b = min(size, int((mind > 0).sum()))
            top = np.argpartition(mind, n - b)[n - b :]
            if not (top == i).any():  # a tie for the farthest among more than `size` rows
                top[0] = i
            lines.fill(top)
        chosen[j] = i
        j += 1
        lines.pick(i)
    return chosen


def kmeans_seeds(vectors: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """The row nearest each K-Means centre (distinct rows), as LTD's starting centres."""
    from .cluster import kmeans_fit

    model = kmeans_fit(vectors, n_clusters, seed)
    X = np.asarray(vectors, dtype=np.float32)
    seeds: list[int] = []
    taken: set[int] = set()
    order, _ = nearest(model.cluster_centers_.astype(np.float32), X)  # nearest row to each centre
    for c, i in enumerate(order.tolist()):
        if i in taken:  # two centres share a nearest row: take that cluster's next-nearest free row
            d = ((X - model.cluster_centers_[c]) ** 2).sum(axis=1)
            i = next(int(r) for r in np.argsort(d, kind="stable") if int(r) not in taken)
        taken.add(i)
        seeds.append(i)
    return np.asarray(seeds, dtype=np.int64)


def default_clusters(k: int) -> int:
    """K-Means clusters seeding a k-center run of k: a tenth of k, 1 to 100 (instructsift's choice;
    LTD does not state one)."""
    return max(1, min(100, k // 10))


@register("select", "kcenter")
@dataclass
class KCenter(Sized):
    """Keep `k` (or `ratio`) rows chosen by greedy k-center on an embedding column (LTD).

    `init="kmeans"` starts from the rows nearest the centres of `n_clusters` K-Means clusters (default:
    a tenth of k, at most 100); `init="random"` from one row drawn with `seed`. `of` is as in `Top`.
    The greedy order becomes the rank.
    """

    column: ColumnRef = "embedding"
    ratio: float | None = None
    k: int | None = None
    of: str = "kept"
    init: str = "kmeans"
    n_clusters: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in ("kmeans", "random"):
            raise OptionError(f"init must be 'kmeans' or 'random', got {self.init!r}")
        check_at_least(self, n_clusters=1)
        _ = self.amount  # checked when built

    def describe(self) -> str:
        return f"k-center greedy: {self.amount.describe(self.of)} rows by {self.column}, starting from {self.init}"

    def apply(self, table: Any, selection: Selection) -> None:
        n_all = table.num_rows
        rows, X = kept_vectors(table, selection, self.column)
        k = selection.size(
            self.amount, n_all if self.of == "all" else len(rows), of_all=self.of == "all", what="k-center"
        )
        k = min(k, len(rows))
        if k == 0:
            selection.drop(rows, "not chosen by k-center", "nothing to choose")
            return
        if self.init == "kmeans":
            start = kmeans_seeds(X, min(k, self.n_clusters or default_clusters(k)), self.seed)
        else:
            start = np.random.default_rng(self.seed).integers(len(rows), size=1)
        order = kcenter_greedy(X, k, init=start)
        picked = rows[order]
        for rank, i in enumerate(picked.tolist(), start=1):
            selection.rank[i] = rank
        rest = np.setdiff1d(rows, picked)
        selection.drop(rest, f"not among the {k} k-center picks by {self.column}")
