"""RDS at scale: the blocked top-k round-robin on synthetic unit vectors, its peak memory, and a plain numpy
reference (the full N x Q similarity matrix) on a slice, which must give the same picks.

    nice -n 10 python benchmarks/rds_scale.py                      # 1M x 576, 10k queries in 10 tasks
    nice -n 10 python benchmarks/rds_scale.py --rows 200000        # a smaller pool

The pool is held as float16 (1M x 576 = 1.15 GB; float32 would be 2.3 GB alone) and read block by block as
float32; queries are drawn around 10 task centres. Peak RSS is the process's high-water mark (ru_maxrss)
after the full-size run, before the reference runs (the reference's N x Q matrix on 50k rows is 2 GB).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from instructsift.selection.target import rds_pick, task_codes


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_pool(rows: int, dim: int, seed: int) -> np.ndarray:
    """Random unit vectors, float16, generated a block at a time (no float64 copy of the whole pool)."""
    rng = np.random.default_rng(seed)
    pool = np.empty((rows, dim), dtype=np.float16)
    for lo in range(0, rows, 65536):
        hi = min(rows, lo + 65536)
        pool[lo:hi] = unit(rng.standard_normal((hi - lo, dim), dtype=np.float32))
    return pool


def make_queries(n: int, tasks: int, dim: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed + 1)
    centres = unit(rng.standard_normal((tasks, dim), dtype=np.float32))
    labels = rng.integers(tasks, size=n)
    q = unit(centres[labels] + 0.8 * unit(rng.standard_normal((n, dim), dtype=np.float32)))
    return q.astype(np.float32), [f"task{t}" for t in labels]


def reference(pool: np.ndarray, queries: np.ndarray, tasks: list[str], budget: int) -> list[int]:
    """Plain numpy: the full similarity matrix, max per task, each task's full ordering, round-robin."""
    codes, names = task_codes(tasks)
    sims = np.asarray(pool, dtype=np.float32) @ queries.T
    per_task = np.stack([sims[:, codes == t].max(axis=1) for t in range(len(names))], axis=1)
    orders = [np.lexsort((np.arange(len(pool)), -per_task[:, t])) for t in range(len(names))]
    picked: list[int] = []
    taken = np.zeros(len(pool), dtype=bool)
    at = [0] * len(names)
    while len(picked) < budget:
        for t in range(len(names)):
            if len(picked) >= budget:
                break
            while taken[orders[t][at[t]]]:
                at[t] += 1
            i = int(orders[t][at[t]])
            taken[i] = True
            picked.append(i)
    return picked


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--ratio", type=float, default=0.05, help="budget: a share of the rows")
    ap.add_argument("--slice", type=int, default=50_000, help="rows the numpy reference is compared on")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    queries, tasks = make_queries(args.queries, args.tasks, args.dim, args.seed)
    pool = make_pool(args.rows, args.dim, args.seed)
    budget = int(args.ratio * args.rows)
    print(f"pool {args.rows:,} x {args.dim} (float16, {pool.nbytes / 1e9:.2f} GB), {args.queries:,} queries "
          f"in {args.tasks} tasks, budget {budget:,} rows")  # fmt: skip
    t0 = time.perf_counter()
    full = rds_pick(pool, queries, tasks, budget)
    t_full = time.perf_counter() - t0
    rss = peak_rss_gb()
    print(
        f"rds (blocked top-k)  {args.rows:>9,} rows  {t_full:8.1f} s   peak RSS {rss:.2f} GB, {len(full['picked']):,} picked"
    )

    part = pool[: args.slice]
    b = int(args.ratio * args.slice)
    t0 = time.perf_counter()
    mine = rds_pick(part, queries, tasks, b)["picked"]
    t_mine = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reference(part, queries, tasks, b)
    t_ref = time.perf_counter() - t0
    same = mine == ref
    print(f"rds (blocked top-k)  {args.slice:>9,} rows  {t_mine:8.1f} s")
    print(f"numpy full matrix    {args.slice:>9,} rows  {t_ref:8.1f} s   ({t_ref / t_mine:.2f}x rds's time)")
    print(f"same picks on the slice: {same} ({b:,} rows)")
    if not same:
        raise SystemExit("the blocked selection differs from the full matrix's")
    if rss > 2.0:
        raise SystemExit(f"peak RSS {rss:.2f} GB is over 2 GB")


if __name__ == "__main__":
    main()
