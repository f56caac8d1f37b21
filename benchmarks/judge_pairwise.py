"""Sanity check of the AlpaGasus judge on real answers: does it rate GPT-4 above Falcon-7B-Instruct?

../shared/data/alpaca_eval/gpt4.json and falcon-7b-instruct.json answer the same 805 AlpacaEval
instructions. Each judge back end rates both answers of every instruction; pairwise accuracy is the
share of pairs (both rated) where the GPT-4 answer gets the higher score, ties counted as half.
Back ends: the local model's expected score (the embedded SmolLM2, no generation) and a server
(`transformers serve` with the same model, started here on 127.0.0.1, or --url/--model), whose scores
come from its replies. On CPU the server generates slowly: --server-n rates a prefix subset.

    python benchmarks/judge_pairwise.py --n 805 --server-n 60
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "data" / "alpaca_eval"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pairwise(strong: list[float | None], weak: list[float | None]) -> dict[str, float]:
    """Wins, ties, losses of the strong answer over pairs where both were rated."""
    both = [(s, w) for s, w in zip(strong, weak, strict=True) if s is not None and w is not None]
    wins = sum(s > w for s, w in both)
    ties = sum(s == w for s, w in both)
    n = len(both)
    return {
        "pairs": len(strong),
        "rated": n,
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "accuracy": (wins + 0.5 * ties) / n if n else float("nan"),
        "strict": wins / n if n else float("nan"),
        "missing": sum(s is None for s in strong) + sum(w is None for w in weak),
    }


def rate(judge, examples, cache_dir) -> tuple[list[float | None], float]:
    from instructsift.api import score
    from instructsift.data.io import Dataset

    ds = Dataset(path="alpaca_eval", format="alpaca", container="json", examples=list(examples))
    start = time.perf_counter()
    table = score(ds, [judge], cache_dir=cache_dir, use_cache=cache_dir is not None, progress=True)
    return table.column("judge").to_pylist(), time.perf_counter() - start


def main() -> None:
    from instructsift.data import read
    from instructsift.scoring.judge_client import ServerJudge
    from instructsift.scoring.judge_local import LocalJudge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=805, help="instructions for the local back end (a prefix)")
    ap.add_argument("--server-n", type=int, default=60, help="instructions for the server back end (0: skip)")
    ap.add_argument("--url", help="an OpenAI-compatible server (default: start transformers serve)")
    ap.add_argument("--model", help="model name on --url")
    ap.add_argument("--max-tokens", type=int, default=ServerJudge.max_tokens)
    ap.add_argument("--concurrency", type=int, default=1, help="server requests in flight (1 suits a CPU server)")
    ap.add_argument("--max-length", type=int, default=2048, help="local back end: prompt tokens (responses cut)")
    ap.add_argument(
        "--min-mass", type=float, default=0.0, help="local back end: LocalJudge.min_mass (0: rate every pair)"
    )
    ap.add_argument("--server-threads", type=int, help="OMP_NUM_THREADS of the started server [torch default]")
    ap.add_argument("--cache-dir", help="reuse scores between runs (default: no cache)")
    args = ap.parse_args()
    if not EVAL.is_dir():
        sys.exit(f"real data not found at {EVAL}")
    strong = read(EVAL / "gpt4.json").examples
    weak = read(EVAL / "falcon-7b-instruct.json").examples
    assert [e.messages[0].content for e in strong] == [e.messages[0].content for e in weak]

    report = {}
    n = min(args.n, len(strong))
    if n:
        judge = LocalJudge(max_length=args.max_length, min_mass=args.min_mass)
        scores, wall = rate(judge, strong[:n] + weak[:n], args.cache_dir)
        report["local (expected score)"] = {
            **pairwise(scores[:n], scores[n:]),
            "wall_s": wall,
            "desc": judge.describe(),
        }

    m = min(args.server_n, len(strong))
    if m:
        if args.url:
            server = contextlib.nullcontext((args.url, args.model))
        else:
            from _judge_server import serve_embedded

            server = serve_embedded(threads=args.server_threads)
        with server as (url, model):
            judge = ServerJudge(
                url=url, model=model, max_tokens=args.max_tokens, timeout=600, concurrency=args.concurrency
            )
            scores, wall = rate(judge, strong[:m] + weak[:m], args.cache_dir)
            report["server (reply)"] = {**pairwise(scores[:m], scores[m:]), "wall_s": wall, "desc": judge.describe()}

    print("\nPairwise accuracy: the GPT-4 answer rated above the Falcon-7B-Instruct answer (ties = 1/2)")
    head = f"{'back end':<24}{'n':>6}{'rated':>7}{'wins':>6}{'ties':>6}{'losses':>8}{'accuracy':>10}{'strict':>8}"
    print(head + f"{'missing':>9}{'wall s':>9}")
    for name, r in report.items():
        print(
            f"{name:<24}{r['pairs']:>6}{r['rated']:>7}{r['wins']:>6}{r['ties']:>6}{r['losses']:>8}"
            f"{r['accuracy']:>10.3f}{r['strict']:>8.3f}{r['missing']:>9}{r['wall_s']:>9.1f}"
        )
    for name, r in report.items():
        print(f"  {name}: {r['desc']}")


if __name__ == "__main__":
    main()
