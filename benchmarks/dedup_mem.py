"""Time and peak memory of `Dedup().apply` (exact + near) on a cached minhash score table.

    python benchmarks/dedup_mem.py PARQUET [--rows N] [--tracemalloc]

PARQUET is a `minhash` scorer's cached shard (content_hash, text_hash, minhash); a `row` column is added.
Prints the RSS before, the peak RSS during `apply` (sampled every 5 ms) and its rise over the start (and
that of Arrow's memory pool), the
wall time, the kept and dropped counts and a digest of every row's reason (equal digests: equal outputs).
With --tracemalloc, also the peak of traced (Python and numpy) allocations during `apply` (slower).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MIB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    from datasketch import MinHashLSH

    from instructsift.selection import Dedup, Selection

    MinHashLSH(threshold=0.7, num_perm=128)  # imports (scipy) before measuring: the same for any implementation

    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--tracemalloc", action="store_true")
    args = ap.parse_args()
    table = pq.read_table(args.parquet, columns=["text_hash", "minhash"])
    if args.rows:
        table = table.slice(0, args.rows)
    table = table.combine_chunks()
    table = table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    sel = Selection.all(table.num_rows)
    sel.keep[::97] = False  # some rows dropped by an earlier step
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    pool = pa.default_memory_pool()
    pool.release_unused()  # what reading the file left in Arrow's pool
    before = peak = rss()
    arrow_before = arrow_peak = pool.bytes_allocated()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, arrow_peak
        while not done.is_set():
            peak = max(peak, rss())
            arrow_peak = max(arrow_peak, pool.bytes_allocated())
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    Dedup().apply(table, sel)
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    traced = ""
    if args.tracemalloc:
        traced = f" traced_peak={tracemalloc.get_traced_memory()[1] / MIB:.0f}MiB"
    digest = hashlib.sha256("\n".join(map(str, sel.reasons)).encode()).hexdigest()[:16]
    print(
        f"rows={table.num_rows} rss_before={before / MIB:.0f}MiB peak={peak / MIB:.0f}MiB "
        f"rise={(peak - before) / MIB:.0f}MiB arrow_rise={(arrow_peak - arrow_before) / MIB:.0f}MiB wall={wall:.1f}s{traced} kept={int(sel.keep.sum())} "
        f"{dict(Counter(sel.codes))} reasons={digest}"
    )


if __name__ == "__main__":
    main()
