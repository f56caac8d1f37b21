"""The ray engine against the local one: wall time of the Superfiltering IFD over the same rows.

    python benchmarks/engine_ray.py                 # the first 2,000 rows of alpaca_random_9k.json
    python benchmarks/engine_ray.py --rows 500 --actors 1

Each engine scores into its own fresh cache, so both compute every row (embedded SmolLM2-135M, CPU).
The ray engine runs on a local Ray started here with every CPU (`ray.init(num_cpus=os.cpu_count())`);
its figure includes the probe that loads the model where the actors run (for the cache key) and each
actor's own model load, which the local engine does once. Ray's start-up is timed apart. The tables
are compared at the end: they must be equal.

Measured 2 Dec 2026 on the shared 2-core machine, NOT quiet (load average 5 to 19 from other work,
falling during the runs, and local runs first, so the figures favour ray; rerun on a quiet machine):
  500 rows: local 361.3 s, ray 189.3 s (+5.6 s ray.init), 1 actor with 2 torch threads; same table
  200 rows: local  99.0 s, ray  84.4 s (+5.0 s ray.init); same table
The 2,000-row default did not finish its local half in 23 min under that load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from instructsift.data import read  # noqa: E402
from instructsift.engine import local  # noqa: E402
from instructsift.engine import ray as ray_engine  # noqa: E402
from instructsift.scoring.ifd import IFD  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "alpaca" / "alpaca_random_9k.json"))
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--actors", type=int, default=None, help="model actors [one per free CPU]")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="isf-engine-bench-") as tmp:
        records = json.loads(Path(args.data).read_text(encoding="utf-8"))[: args.rows]
        path = Path(tmp) / "rows.json"
        path.write_text(json.dumps(records), encoding="utf-8")
        data = read(path, on_error="skip")
        n = len(data.examples)  # rows that parse (alpaca has a few with an empty output)

        t = time.perf_counter()
        want = local.score(data, [IFD(method="superfiltering")], cache_dir=Path(tmp) / "local", progress=False)
        t_local = time.perf_counter() - t
        print(f"local: {t_local:.1f} s", flush=True)

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
        t_start = time.perf_counter() - t
        print(f"ray.init: {t_start:.1f} s", flush=True)
        t = time.perf_counter()
        got = ray_engine.score(
            data, [IFD(method="superfiltering")], cache_dir=Path(tmp) / "ray", progress=True, actors=args.actors
        )
        t_ray = time.perf_counter() - t
        ray.shutdown()

    print(
        f"\nSuperfiltering IFD (embedded SmolLM2-135M, CPU) over {n} rows of {Path(args.data).name}, {os.cpu_count()} CPUs"
    )
    print(f"{'engine':<28}{'wall s':>10}{'rows/s':>10}{'x local':>10}")
    for name, secs in (("local", t_local), ("ray (Ray already up)", t_ray), ("ray + ray.init", t_ray + t_start)):
        print(f"{name:<28}{secs:>10.1f}{n / secs:>10.1f}{secs / t_local:>10.2f}")
    print(f"same table: {'yes' if got.equals(want) else 'NO'}")


if __name__ == "__main__":
    main()
