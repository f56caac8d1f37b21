"""Scale of a cheap curation recipe through the Python API: rows/s, peak RSS and a cached rerun.

    python benchmarks/scale.py [--sizes 10k,100k] [--engines local,ray] [--dir DIR]   # 1M: --sizes 10k,100k,1M

Rows are made from the real pools in ../shared/data (Alpaca, Dolly, LIMA, Code Alpaca), repeated with
small deterministic edits so that every row is distinct, and written as JSON Lines. The recipe (run by
`instructsift.run`, as `instructsift run` runs it): the `Rules` scorer with character counts only (no tokenizer), `Language`, `MinHashSignature`; then
`Threshold("response_chars >= 20")`, `RuleFilter`, `Dedup` (exact and near), `Top("response_chars",
ratio=0.5)`, and the kept rows written as JSON Lines. Each size runs twice in fresh processes (peak RSS
from `os.wait4`): first with an empty score cache, then again with the cache filled (the "cached rerun").
The issue's targets are printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POOLS = ("alpaca/alpaca_random_9k.json", "dolly/dolly_3k.json", "lima/lima_1k.json", "code/code_alpaca_2k.json")
EDITS = ("", " Please answer briefly.", " Explain your answer.", " Be precise.", " Think it through.")
MIB = 2**20


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1_000}k" if n % 1_000 == 0 else str(n)


def pool() -> list[dict]:
    rows = []
    for name in POOLS:
        for r in json.loads((SHARED / name).read_text(encoding="utf-8")):
            if isinstance(r.get("instruction"), str) and isinstance(r.get("output"), str) and r["output"].strip():
                rec = {"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]}
                if r.get("history"):
                    rec["history"] = r["history"]
                rows.append(rec)
    return rows


def make_data(path: Path, n: int) -> None:
    """`n` distinct rows: round k over the pool appends edit k % 5 and, from the fifth round on, a number."""
    base = pool()
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            k, r = divmod(i, len(base))
            rec = base[r]
            if k:
                tail = EDITS[k % len(EDITS)] + (f" (variant {k})" if k >= len(EDITS) else "")
                rec = {**rec, "instruction": rec["instruction"] + tail}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


STEPS = [
    {"score": "rules", "with": {"tokenizer": None}},
    {"score": "language"},
    {"score": "minhash"},
    {"select": "threshold", "with": {"where": "response_chars >= 20"}},
    {"select": "rule_filter"},
    {"select": "dedup"},
    {"select": "top", "with": {"column": "response_chars", "ratio": 0.5}},
]


def run_once(data: Path, cache: Path, out: Path, engine: str) -> None:
    """The recipe through `instructsift.run` (the one path every run takes), timed; prints one JSON line."""
    from instructsift import recipe as recipes
    from instructsift.pipeline import run

    t = time.perf_counter()
    recipe = {"input": str(data), "output": str(out), "cache_dir": str(cache), "engine": engine, "steps": STEPS}
    lines: list[str] = []
    result = run(recipes.from_dict(recipe), progress=False, overwrite=True, log=lines.append)
    total = time.perf_counter() - t
    cached = sum(int(m.split(", ")[1].split()[0]) for m in lines if m.endswith("from cache"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kept = result.summary()["kept"]
    print(json.dumps({"rows": result.table.num_rows, "kept": kept, "seconds": total, "cached": cached, "rss": rss}))


def child(data: Path, cache: Path, out: Path, engine: str) -> dict:
    """Run the recipe in a fresh process; its result plus the peak RSS the kernel reports for it (of the
    driver: a Ray run's workers are other processes) and the CPU time of it and every process it started
    (Ray's node and workers included: this process is their subreaper, and reaps them)."""
    cmd = [sys.executable, __file__, "--step", str(data), str(cache), str(out), engine]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=os.environ)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"the run over {data} failed (exit {proc.returncode})")
    reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["rss"] = max(result["rss"], usage.ru_maxrss * 1024)
    # robust to a busy machine, unlike the wall time
    result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def become_subreaper() -> None:
    """Adopt the processes a run leaves behind (Ray's), so that their CPU time is counted (Linux only)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "prctl"):
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans(seconds: float = 60.0) -> None:
    """Wait (up to `seconds`) for the adopted processes to exit, reaping each."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # none left
            return
        if pid == 0:
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10k,100k", help="comma-separated row counts, e.g. 10k,100k,1M")
    ap.add_argument("--dir", type=Path, help="keep data, cache and outputs here (default: a temporary folder)")
    ap.add_argument("--engines", default="local", help="comma-separated: local, ray (each prints its rows)")
    ap.add_argument("--step", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        run_once(*map(Path, a.step[:3]), a.step[3])
        return
    sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
    become_subreaper()
    with tempfile.TemporaryDirectory() as tmp:
        root = a.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = {}
        for n in sizes:
            data = root / f"rows_{label(n)}.jsonl"
            if not data.exists():
                make_data(data, n)
            for engine in a.engines.split(","):
                cache = root / f"cache_{engine}_{label(n)}"
                first = child(data, cache, root / f"kept_{engine}_{label(n)}.jsonl", engine)
                again = child(data, cache, root / f"kept_{engine}_{label(n)}_again.jsonl", engine)
                results[(engine, n)] = (first, again)
                print(f"# {engine} {label(n)}: {json.dumps({'first': first, 'cached': again})}", file=sys.stderr)
        print(table(results))


def table(results: dict[tuple[str, int], tuple[dict, dict]]) -> str:
    """Side by side: wall time (what a user waits) and CPU time (robust to a busy machine)."""
    head = ("engine", "rows", "kept", "first run s", "cpu s", "rows/s", "rows/cpu-s", "peak RSS MiB")
    head += ("cached rerun s", "cpu s", "rerun/first (cpu)")
    lines = [head]
    for (engine, n), (first, again) in results.items():
        share = f"{again['seconds'] / first['seconds']:.0%} ({again['cpu'] / first['cpu']:.0%})"
        rss = f"{max(first['rss'], again['rss']) / MIB:,.0f}"
        lines.append(
            (engine, label(n), str(first["kept"]), f"{first['seconds']:.1f}", f"{first['cpu']:.1f}")
            + (f"{n / first['seconds']:,.0f}", f"{n / first['cpu']:,.0f}", rss)
            + (f"{again['seconds']:.1f}", f"{again['cpu']:.1f}", share)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    targets = []
    for engine in dict.fromkeys(e for e, _ in results):
        sizes = sorted(n for e, n in results if e == engine)
        if 100_000 in sizes and 1_000_000 in sizes:
            big, small = results[(engine, 1_000_000)][0], results[(engine, 100_000)][0]
            ratio, cpu = big["seconds"] / small["seconds"], big["cpu"] / small["cpu"]
            targets.append(f"{engine}: time 1M / 100k = {ratio:.1f} (cpu {cpu:.1f}) (target <= 12)")
        top = sizes[-1]
        first, again = results[(engine, top)]
        gb = max(first["rss"], again["rss"]) / 2**30
        targets.append(f"{engine}: peak RSS at {label(top)} = {gb:.2f} GB (target at 1M: <= 2 GB)")
        share, cpu_share = again["seconds"] / first["seconds"], again["cpu"] / first["cpu"]
        targets.append(
            f"{engine}: cached rerun at {label(top)} = {share:.0%} of the first (cpu {cpu_share:.0%}) "
            "(target at 1M: <= 10%)"
        )
    return "\n".join(out + [""] + targets)


if __name__ == "__main__":
    main()
