"""Memory of the local engine's cache path: 50k rows whose 384-float embeddings are all cached.

    python benchmarks/engine_memory.py [--rows 50000] [--dim 384]

Fills a score cache in a child process, then, in a fresh one, reads the data set and calls
`instructsift.engine.local.score` (every row cached, so no model runs) and prints the peak of Python
allocations (tracemalloc) and the peak RSS growth during `score` (Linux: VmHWM after resetting it).
Run it against another checkout with PYTHONPATH=<checkout>/src to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

POOL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca" / "alpaca_random_9k.json"


class Cached:
    """A stand-in embedding scorer whose results are all in the cache (it is never asked to score)."""

    name = "embed-bench"
    columns = {"embedding": "embedding_reason", "embedding_reason": None}  # what it declares it writes

    def __init__(self, dim: int):
        self.dim = dim

    @property
    def schema(self):
        import pyarrow as pa

        return pa.schema([("embedding", pa.list_(pa.float32(), self.dim)), ("embedding_reason", pa.string())])

    def cache_key(self) -> str:
        return f"bench{self.dim}"

    def describe(self) -> str:
        return "cached embeddings"

    def score(self, examples, skip, advance=None):
        todo = [ex for ex in examples if ex.content_hash not in skip]
        if todo:
            raise RuntimeError(f"{len(todo)} rows not cached")
        return iter(())


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def pool_peak() -> int:
    import pyarrow as pa

    return pa.default_memory_pool().max_memory() or 0


def make_data(path: Path, n: int) -> None:
    pool = [r for r in json.loads(POOL.read_text(encoding="utf-8")) if r["output"].strip()]
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            r = pool[i % len(pool)]
            f.write(json.dumps({**r, "instruction": f"{r['instruction']} (#{i})"}) + "\n")


def fill(data: Path, cache: Path, dim: int) -> None:
    import numpy as np

    from instructsift.api import read
    from instructsift.scoring.cache import ScoreCache

    ds = read(data)
    scorer = Cached(dim)
    c = ScoreCache(cache, scorer.name, scorer.cache_key(), scorer.schema)
    rng = np.random.default_rng(0)
    for lo in range(0, len(ds.examples), 5000):
        part = ds.examples[lo : lo + 5000]
        vecs = rng.standard_normal((len(part), dim), dtype=np.float32)
        c.add(
            [
                (ex.content_hash, {"embedding": v.tolist(), "embedding_reason": None})
                for ex, v in zip(part, vecs, strict=True)
            ]
        )
    c.close()


def measure(data: Path, cache: Path, dim: int) -> None:
    from instructsift.api import read
    from instructsift.engine.local import score

    ds = read(data)
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import instructsift.models  # noqa: F401 - imported by `score`: not counted

    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status("VmRSS")
    tracemalloc.start()
    t = time.perf_counter()
    table = score(ds, [Cached(dim)], cache_dir=cache, progress=False)
    elapsed = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mib = 2**20
    print(
        f"rows {table.num_rows}  score(): {elapsed:.1f} s  Python peak (tracemalloc) {peak / mib:.0f} MiB  "
        f"RSS growth (peak) {(_status('VmHWM') - before) / mib:.0f} MiB  Arrow pool peak {pool_peak() / mib:.0f} MiB  "
        f"table {table.nbytes / mib:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--step", choices=["fill", "measure"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        (fill if a.step == "fill" else measure)(a.dir / "data.jsonl", a.dir / "cache", a.dim)
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_data(d / "data.jsonl", a.rows)
        for step in ("fill", "measure"):
            cmd = [sys.executable, __file__, "--step", step, "--dir", str(d), "--dim", str(a.dim)]
            subprocess.run(cmd, check=True, env=os.environ)


if __name__ == "__main__":
    main()
