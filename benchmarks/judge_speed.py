"""Judge throughput against a local OpenAI-compatible server: concurrency 1 vs the default, same run.

Starts `transformers serve` with the embedded SmolLM2 on 127.0.0.1 (or uses --url/--model), rates the
same real Alpaca rows twice, uncached, once one request at a time and once at the judge's default
concurrency, and prints requests/s and examples/s side by side with the ratio. The two settings
alternate for --repeats rounds and the median round is reported, so that load from other processes on
a shared machine falls on both.

    python benchmarks/judge_speed.py --n 24
    python benchmarks/judge_speed.py --n 24 --continuous-batching   # the server batches requests
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_random_9k.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(judge, examples) -> dict[str, float]:
    """Rate `examples` once, uncached: wall time, requests/s, examples/s."""
    before = judge.stats["requests"]
    start = time.perf_counter()
    rows = [r for part in judge.score(examples) for _, r in part]
    wall = time.perf_counter() - start
    requests = judge.stats["requests"] - before
    return {
        "wall_s": wall,
        "requests": requests,
        "requests/s": requests / wall,
        "examples/s": len(rows) / wall,
        "scored": sum(r["judge"] is not None for r in rows),
        "missing": sum(r["judge"] is None for r in rows),
    }


def main() -> None:
    from instructsift.data import read
    from instructsift.scoring.judge_client import ServerJudge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="examples rated per setting")
    ap.add_argument("--url", help="an OpenAI-compatible server (default: start transformers serve)")
    ap.add_argument("--model", help="model name on --url")
    ap.add_argument("--concurrency", type=int, default=ServerJudge.concurrency, help="the 'default' setting")
    ap.add_argument("--max-tokens", type=int, default=ServerJudge.max_tokens)
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds per setting (median reported)")
    ap.add_argument("--server-threads", type=int, help="OMP_NUM_THREADS of the started server [torch default]")
    ap.add_argument("--continuous-batching", action="store_true", help="start the server with continuous batching")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"real data not found at {DATA}")
    examples = read(DATA, on_error="skip").examples[: args.n + 1]
    warm, examples = examples[:1], examples[1:]

    if args.url:
        if not args.model:
            sys.exit("--url needs --model")
        server = contextlib.nullcontext((args.url, args.model))
    else:
        from _judge_server import serve_embedded

        server = serve_embedded(["--continuous-batching"] if args.continuous_batching else [], args.server_threads)
    settings = (1, args.concurrency)
    rounds: dict[int, list[dict[str, float]]] = {c: [] for c in settings}
    with server as (url, model):
        judges = {
            c: ServerJudge(url=url, model=model, concurrency=c, max_tokens=args.max_tokens, timeout=600)
            for c in settings
        }
        list(judges[1].score(warm))  # the first request pays for lazy start-up
        for r in range(args.repeats):
            for c in settings if r % 2 == 0 else settings[::-1]:
                rounds[c].append(measure(judges[c], examples))
    one, many = (sorted(rounds[c], key=lambda m: m["wall_s"])[len(rounds[c]) // 2] for c in settings)
    mode = "continuous batching" if args.continuous_batching else "default"
    threads = f", OMP_NUM_THREADS={args.server_threads}" if args.server_threads else ""
    print(f"judge server: {url} ({mode}{threads})")
    print(f"{len(examples)} real Alpaca rows, max_tokens {args.max_tokens}, uncached, same run")
    walls = {c: ", ".join(f"{m['wall_s']:.1f}" for m in rounds[c]) for c in settings}
    print(
        f"round wall times (s): concurrency 1: {walls[1]}; concurrency {args.concurrency}: {walls[args.concurrency]}\n"
    )
    print(f"{'metric':<14}{'concurrency 1':>16}{f'concurrency {args.concurrency}':>18}{'ratio':>9}")
    for key in ("wall_s", "requests/s", "examples/s"):
        ratio = many[key] / one[key]
        print(f"{key:<14}{one[key]:>16.3f}{many[key]:>18.3f}{ratio:>8.2f}x")
    for key in ("requests", "scored", "missing"):
        print(f"{key:<14}{one[key]:>16d}{many[key]:>18d}")


if __name__ == "__main__":
    main()
