"""Target similarity (RDS+): pick the pool rows most similar to the targets, round-robin over tasks.

Ivison et al., 2025, "Large-Scale Data Selection for Instruction Tuning" (arXiv 2503.01807): a pool row's
score for a task is its cosine similarity to the task's target examples, aggregated over them (`max`, the
paper's default, or `mean`); tasks take turns, each taking its most similar row not yet picked, until the
budget is spent. Without task labels every target row is its own task (the paper's per-query round-robin).
Shu et al., 2026, "On Representation Redundancy in Large-Scale Instruction Tuning Data Selection" (arXiv
2602.13773, CRDS-W): whitening the vectors first (`whiten`), with the pool's mean and covariance, improves
on RDS+.

Scale: never an N x Q matrix. The pool is read in blocks of rows; each block's similarities to the targets
(a B x Q product) are aggregated per task and merged into a running top-k per task (k = what the
round-robin can consume: the budget over the tasks, with room for rows that other tasks take first; a task
that runs out of its k while it still has rows is recomputed with a k twice as large, so the picks are
exactly the full matrix's). `mean` is a product with each task's mean target vector (mean of dot products
= dot with the mean). Memory: the top-k lists, a B x Q block and two n-vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import OptionError
from ..registry import ColumnRef, register
from .base import Selection
from .size import Sized

AGGREGATES = ("max", "mean")
BLOCK_FLOATS = 1 << 24  # floats per similarity block (64 MiB of float32)
WHITEN_SAMPLE = 100_000  # pool rows the whitening's covariance is fitted on, at most


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


@dataclass
class Whitening:
    """CRDS-W's whitening: x -> (x - mean) W with W = C^(-1/2) (ZCA), C the pool's covariance with
    Ledoit-Wolf shrinkage (scikit-learn), so that a pool smaller than the dimension still works.
    Fitted state ends in `_` (scikit-learn's convention); `save`/`load` keep it as .npz."""

    mean_: np.ndarray | None = None
    matrix_: np.ndarray | None = None
    shrinkage_: float = 0.0

    def fit(self, X: np.ndarray, sample: int = WHITEN_SAMPLE, seed: int = 0) -> Whitening:
        from sklearn.covariance import LedoitWolf

        X = np.asarray(X)
        if len(X) < 2:
            raise OptionError(f"whitening needs at least 2 pool vectors, got {len(X)}")
        if len(X) > sample:
            X = X[np.sort(np.random.default_rng(seed).choice(len(X), sample, replace=False))]
        lw = LedoitWolf().fit(np.asarray(X, dtype=np.float64))
        vals, vecs = np.linalg.eigh(lw.covariance_)
        vals = np.maximum(vals, vals.max() * 1e-12)
        self.mean_ = lw.location_.astype(np.float32)
        self.matrix_ = ((vecs / np.sqrt(vals)) @ vecs.T).astype(np.float32)
        self.shrinkage_ = float(lw.shrinkage_)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.mean_ is None:
            raise ValueError("Whitening is not fitted")
        return (np.asarray(X, dtype=np.float32) - self.mean_) @ self.matrix_

    def save(self, path: str | Path) -> None:
        from ..atomic import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mean=self.mean_, matrix=self.matrix_, shrinkage=np.float64(self.shrinkage_))

    @classmethod
    def load(cls, path: str | Path) -> Whitening:
        with np.load(path) as z:
            return cls(z["mean"], z["matrix"], float(z["shrinkage"]))


def fitted_whitening(X: np.ndarray, log: Callable[[str], None] | None = None) -> tuple[Whitening, Path]:
    """The whitening of pool vectors X, cached as an artifact (`<cache>/artifacts/whiten-<key>.npz`, keyed
    by the vectors' bytes), and its path."""
    from ..models import cache_root

    h = hashlib.blake2b(f"whiten/1 {X.shape} {WHITEN_SAMPLE}".encode(), digest_size=8)
    for lo in range(0, len(X), 65536):
        h.update(np.ascontiguousarray(X[lo : lo + 65536], dtype=np.float32).tobytes())
    path = Path(cache_root()) / "artifacts" / f"whiten-{h.hexdigest()}.npz"
    if path.exists():
        return Whitening.load(path), path
    w = Whitening().fit(X)
    path.parent.mkdir(parents=True, exist_ok=True)
    w.save(path)
    return w, path


def task_codes(tasks: Any) -> tuple[np.ndarray, list[str]]:
    """Each target's task as an integer, tasks numbered in order of first appearance, and their names."""
    names: dict[str, int] = {}
    codes = np.asarray([names.setdefault(str(t), len(names)) for t in tasks], dtype=np.int64)
    return codes, list(names)


def top_per_task(
    pool: np.ndarray,
    queries: np.ndarray,
    codes: np.ndarray,
    k: int,
    aggregate: str = "max",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    block: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each task's k pool rows with the highest aggregated cosine similarity, best first (lower row on
    ties), computed block by block.

    `pool` (N x d, any float dtype, e.g. a memory map) and `queries` (Q x d) are unit vectors (`transform`,
    applied to each pool block, must keep them so); `codes` (Q,) numbers the tasks 0..T-1. Returns
    (rows T x k', sims T x k', best sim N, best task N) with k' = min(k, N); the last two are each row's
    highest aggregated similarity over tasks and that task.
    """
    if aggregate not in AGGREGATES:
        raise OptionError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    n = len(pool)
    n_tasks = int(codes.max()) + 1
    q = np.asarray(queries, dtype=np.float32)
    if aggregate == "mean":  # mean over a task's queries of x.q = x . mean(q)
        counts = np.bincount(codes, minlength=n_tasks).astype(np.float32)
        cols = np.zeros((n_tasks, q.shape[1]), dtype=np.float32)
        np.add.at(cols, codes, q)
        cols /= counts[:, None]
        starts = None
    else:  # the queries sorted by task: a task's columns are contiguous, reduced by np.maximum.reduceat
        order = np.argsort(codes, kind="stable")
        cols = q[order]
        starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
        if len(starts) == n_tasks and n_tasks == len(q):
            starts = None  # one query per task: the similarities are the task scores
    cols_t = np.ascontiguousarray(cols.T)
    k = min(k, n)
    rows_best = np.full((n_tasks, k), -1, dtype=np.int64)
    sims_best = np.full((n_tasks, k), -np.inf, dtype=np.float32)
    best_sim = np.empty(n, dtype=np.float32)
    best_task = np.empty(n, dtype=np.int64)
    step = block or max(1, min(16384, BLOCK_FLOATS // max(1, len(cols))))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        x = np.asarray(pool[lo:hi], dtype=np.float32)
        if transform is not None:
            x = transform(x)
        s = x @ cols_t  # (B, Q) or (B, T)
        if starts is not None:
            s = np.maximum.reduceat(s, starts, axis=1)
        best_task[lo:hi] = s.argmax(axis=1)
        best_sim[lo:hi] = s[np.arange(hi - lo), best_task[lo:hi]]
        # merge into the running top-k: only tasks where some row of the block beats the k-th best
        hit = np.flatnonzero((s > sims_best[:, -1]).any(axis=0))
        if len(hit) == 0:
            continue
        cand_s = np.concatenate([sims_best[hit], s[:, hit].T], axis=1)
        cand_r = np.concatenate([rows_best[hit], np.broadcast_to(np.arange(lo, hi), (len(hit), hi - lo))], axis=1)
        if cand_s.shape[1] > k:
            part = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            cand_s = np.take_along_axis(cand_s, part, axis=1)
            cand_r = np.take_along_axis(cand_r, part, axis=1)
        key = np.where(cand_r < 0, np.iinfo(np.int64).max, cand_r)
        order = np.lexsort((key, -cand_s), axis=1)  # best first, lower row on ties
        sims_best[hit] = np.take_along_axis(cand_s, order, axis=1)
        rows_best[hit] = np.take_along_axis(cand_r, order, axis=1)
    return rows_best, sims_best, best_sim, best_task


def round_robin(
    rows: np.ndarray, sims: np.ndarray, budget: int, complete: np.ndarray
) -> tuple[list[int], list[int], bool]:
    """Tasks take turns (task 0 first), each taking its most similar row not yet picked, until `budget`
    rows are picked or no task has rows left. `rows`/`sims` are each task's best-first lists; `complete[t]`
    says task t's list holds every row it could take. Returns (picked rows, the task each was picked for,
    ok); ok is False when a task ran out of a truncated list (recompute with a longer one)."""
    n_tasks, k = rows.shape
    taken: set[int] = set()
    picked: list[int] = []
    owner: list[int] = []
    at = [0] * n_tasks
    live = [t for t in range(n_tasks)]
    while len(picked) < budget and live:
        still = []
        for t in live:
            if len(picked) >= budget:
                still.append(t)
                continue
            r = rows[t]
            i = at[t]
            while i < k and (r[i] < 0 or int(r[i]) in taken):
                if r[i] < 0:
                    i = k
                    break
                i += 1
            at[t] = i
            if i >= k:
                if not complete[t]:
                    return picked, owner, False
                continue  # this task has nothing left
            taken.add(int(r[i]))
            picked.append(int(r[i]))
            owner.append(t)
            at[t] = i + 1
            still.append(t)
        live = still
    return picked, owner, True


def rds_pick(
    pool: np.ndarray,
    queries: np.ndarray,
    tasks: Any,
    budget: int,
    aggregate: str = "max",
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    block: int | None = None,
) -> dict[str, Any]:
    """The RDS round-robin picks of `budget` rows of `pool` for `queries` grouped by `tasks`, in pick order.
    Returns {picked, owner, best_sim, best_task, task_names}."""
    codes, names = task_codes(tasks)
    n = len(pool)
    budget = min(budget, n)
    n_tasks = len(names)
    share = max(1, -(-budget // n_tasks))
    k = min(n, share + max(16, share // 4))  # room for rows other tasks take first; refilled if short
    while True:
        rows, sims, best_sim, best_task = top_per_task(pool, queries, codes, k, aggregate, transform, block)
        complete = np.full(n_tasks, k >= n)
        picked, owner, ok = round_robin(rows, sims, budget, complete)
        if ok:
            return {"picked": picked, "owner": owner, "best_sim": best_sim, "best_task": best_task, "task_names": names}
        k = min(n, 2 * k)


@register("select", "rds")
@dataclass
class RDS(Sized):
    """Keep `k` (or `ratio`) rows most similar to the targets, round-robin over the target tasks (RDS+).

    `targets` is a `targets` fit step's artifact (.npz of vectors and tasks, `"@NAME"` in a recipe);
    `column` the pool's vectors (the `representation` scorer's); `aggregate` a task's queries by `max`
    (the paper's default) or `mean`; `whiten` first (CRDS-W, fitted on the pool's vectors). `of` is as
    in `Top`. The pick order becomes the rank; a dropped row's detail names its best similarity and task.
    """

    targets: str
    column: ColumnRef = "representation"
    ratio: float | None = None
    k: int | None = None
    of: str = "kept"
    aggregate: str = "max"
    whiten: bool = False
    _whitening: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _ = self.amount  # checked when built
        if self.aggregate not in AGGREGATES:
            raise OptionError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")

    def describe(self) -> str:
        size = self.amount.describe(self.of)
        white = ", whitened" if self.whiten else ""
        return f"rds: {size} rows by {self.column} similarity to the targets ({self.aggregate} per task{white})"

    def apply(self, table: Any, selection: Selection) -> None:
        from ..scoring.representations import load_targets
        from .vectors import kept_vectors

        queries, tasks = load_targets(self.targets)
        rows, X = kept_vectors(table, selection, self.column)
        if queries.shape[1] != X.shape[1]:
            raise OptionError(
                f"the targets are {queries.shape[1]}-d but {self.column!r} is {X.shape[1]}-d: encode both with one model"
            )
        n_all = table.num_rows
        k = selection.size(self.amount, n_all if self.of == "all" else len(rows), of_all=self.of == "all",
                           what="rds")  # fmt: skip
        k = min(k, len(rows))
        transform = None
        if self.whiten and len(rows):
            w, _path = fitted_whitening(X)
            self._whitening = w
            queries = _unit(w.transform(queries))

            def transform(x: np.ndarray) -> np.ndarray:
                return _unit(w.transform(x))

        if k == 0:
            selection.drop(rows, "not chosen by rds", "nothing to choose")
            return
        res = rds_pick(X, queries, tasks, k, self.aggregate, transform)
        picked = rows[np.asarray(res["picked"], dtype=np.int64)]
        for rank, i in enumerate(picked.tolist(), start=1):
            selection.rank[i] = rank
        keep = np.zeros(len(rows), dtype=bool)
        keep[res["picked"]] = True
        rest = np.flatnonzero(~keep)
        names = res["task_names"]
        details = [
            f"best similarity {s:.4f} to {names[t]}"
            for s, t in zip(res["best_sim"][rest].tolist(), res["best_task"][rest].tolist(), strict=True)
        ]
        selection.drop(rows[rest], f"not among the {k} rds picks by {self.column}", details)
