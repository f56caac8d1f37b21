"""Scale of a cheap curation recipe through the Python API: rows/s, peak RSS and a cached rerun.

    python benchmarks/scale.py [--sizes 10k,100k] [--dir DIR]        # 1M: --sizes 10k,100k,1M

Rows are made from the real pools in ../shared/data (Alpaca, Dolly, LIMA, Code Alpaca), repeated with
small deterministic edits so that every row is distinct, and written as JSON Lines. The recipe: the
`Rules` scorer with character counts only (no tokenizer), `Language`, `MinHashSignature`; then
`Threshold("response_chars >= 20")`, `RuleFilter`, `Dedup` (exact and near), `Top("response_chars",
ratio=0.5)`, and the kept rows written as JSON Lines. Each size runs twice in fresh processes (peak RSS
from `os.wait4`): first with an empty score cache, then again with the cache filled (the "cached rerun").
The issue's targets are printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
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


def run_once(data: Path, cache: Path, out: Path) -> None:
    """The recipe, timed from reading to writing; prints one JSON line."""
    import resource

    from instructsift.api import read, score, select, write
    from instructsift.scoring.dedup import MinHashSignature
    from instructsift.scoring.language import Language
    from instructsift.scoring.rules import Rules
    from instructsift.selection.dedup import Dedup
    from instructsift.selection.rules import RuleFilter
    from instructsift.selection.threshold import Threshold
    from instructsift.selection.top import Top

    t = time.perf_counter()
    ds = read(data)
    t_read = time.perf_counter() - t
    stats: dict = {}
    table = score(
        ds, [Rules(tokenizer=None), Language(), MinHashSignature()], cache_dir=cache, progress=False, stats=stats
    )
    t_score = time.perf_counter() - t - t_read
    picked = select(
        ds, table, Threshold("response_chars >= 20"), RuleFilter(), Dedup(), Top("response_chars", ratio=0.5)
    )
    t_select = time.perf_counter() - t - t_read - t_score
    write(picked, out)
    total = time.perf_counter() - t
    kept = int(picked.selection.keep.sum())
    cached = sum(s["cached"] for s in stats.values())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "rows": len(ds),
                "kept": kept,
                "seconds": total,
                "read": t_read,
                "score": t_score,
                "select": t_select,
                "cached": cached,
                "rss": rss,
            }
        )
    )


def child(data: Path, cache: Path, out: Path) -> dict:
    """Run the recipe in a fresh process; its result plus the peak RSS the kernel reports for it."""
    cmd = [sys.executable, __file__, "--step", str(data), str(cache), str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=os.environ)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"the run over {data} failed (exit {proc.returncode})")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["rss"] = max(result["rss"], usage.ru_maxrss * 1024)
    result["cpu"] = usage.ru_utime + usage.ru_stime  # robust to a busy machine, unlike the wall time
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10k,100k", help="comma-separated row counts, e.g. 10k,100k,1M")
    ap.add_argument("--dir", type=Path, help="keep data, cache and outputs here (default: a temporary folder)")
    ap.add_argument("--step", nargs=3, type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        run_once(*a.step)
        return
    sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = a.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results = {}
        for n in sizes:
            data, cache = root / f"rows_{label(n)}.jsonl", root / f"cache_{label(n)}"
            if not data.exists():
                make_data(data, n)
            first = child(data, cache, root / f"kept_{label(n)}.jsonl")
            again = child(data, cache, root / f"kept_{label(n)}_again.jsonl")
            results[n] = (first, again)
            print(f"# {label(n)}: {json.dumps({'first': first, 'cached': again})}", file=sys.stderr, flush=True)
        print(table(results))


def table(results: dict[int, tuple[dict, dict]]) -> str:
    """Side by side: wall time (what a user waits) and CPU time (robust to a busy machine)."""
    head = ("rows", "kept", "first run s", "cpu s", "rows/s", "rows/cpu-s", "read/score/select s", "peak RSS MiB")
    head += ("cached rerun s", "cpu s", "rerun/first (cpu)")
    lines = [head]
    for n, (first, again) in results.items():
        parts = f"{first['read']:.0f}/{first['score']:.0f}/{first['select']:.0f}"
        share = f"{again['seconds'] / first['seconds']:.0%} ({again['cpu'] / first['cpu']:.0%})"
        rss = f"{max(first['rss'], again['rss']) / MIB:,.0f}"
        lines.append(
            (label(n), str(first["kept"]), f"{first['seconds']:.1f}", f"{first['cpu']:.1f}")
            + (f"{n / first['seconds']:,.0f}", f"{n / first['cpu']:,.0f}", parts, rss)
            + (f"{again['seconds']:.1f}", f"{again['cpu']:.1f}", share)
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    targets = []
    if 100_000 in results and 1_000_000 in results:
        big, small = results[1_000_000][0], results[100_000][0]
        ratio, cpu = big["seconds"] / small["seconds"], big["cpu"] / small["cpu"]
        targets.append(f"time 1M / 100k = {ratio:.1f} (cpu {cpu:.1f}) (target <= 12)")
    top = max(results)
    first, again = results[top]
    gb = max(first["rss"], again["rss"]) / 2**30
    targets.append(f"peak RSS at {label(top)} = {gb:.2f} GB (target at 1M: <= 2 GB)")
    share, cpu_share = again["seconds"] / first["seconds"], again["cpu"] / first["cpu"]
    targets.append(
        f"cached rerun at {label(top)} = {share:.0%} of the first (cpu {cpu_share:.0%}) (target at 1M: <= 10%)"
    )
    return "\n".join(out + [""] + targets)


if __name__ == "__main__":
    main()
