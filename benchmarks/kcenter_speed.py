"""Greedy k-center speed: instructsift's batched GEMM k-center against the plain loop, same answer.

    python benchmarks/kcenter_speed.py            # 50,000 x 384 -> 5,000 centres, synthetic and real
    python benchmarks/kcenter_speed.py --quick    # 10,000 x 384 -> 1,000

Data: (1) synthetic: 50,000 unit vectors in 384-d around 1,000 random centres (sentence-embedding-like:
most pairs nearly orthogonal, clusters of near neighbours); (2) real: all-MiniLM-L6-v2 embeddings of
every distinct instruction, input and response text in ../shared/data (47,082 texts), embedded once
and cached under the instructsift cache (that first run takes ~40 min on 2 busy cores; --no-real
skips it). The plain loop is the usual implementation: one distance
pass over all rows per new centre (matrix-vector product with precomputed norms, numpy). Both are
exact greedy in float32; the table says for how many steps they agree, and when they part, how far
apart (in float64) the two rows were that each took next: a tie below float32 precision.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from instructsift.models import cache_root  # noqa: E402
from instructsift.selection.kcenter import kcenter_greedy  # noqa: E402


def naive_kcenter(X: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """One full pass over the data per centre: d = min(d, |x|^2 + |c|^2 - 2 X c)."""
    sq = np.einsum("ij,ij->i", X, X)
    chosen = [start]
    d = np.maximum(sq + sq[start] - 2.0 * (X @ X[start]), 0.0)
    d[start] = -1.0
    while len(chosen) < k:
        i = int(d.argmax())
        chosen.append(i)
        np.minimum(d, np.maximum(sq + sq[i] - 2.0 * (X @ X[i]), 0.0), out=d)
        d[i] = -1.0  # chosen rows stay at -1: the minimum keeps them there
    return np.asarray(chosen)


def tie_gap(X: np.ndarray, prefix: np.ndarray, a: int, b: int) -> float:
    """|d(a)^2 - d(b)^2| in float64, d = distance to the nearest row of `prefix`: how close the two
    candidates for the next centre were."""
    X64, C = X.astype(np.float64), X[prefix].astype(np.float64)
    d = [min(((C - X64[r]) ** 2).sum(axis=1)) for r in (a, b)]
    return abs(d[0] - d[1])


def synthetic(n: int, dim: int, centres: int = 1000, spread: float = 0.8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(centres, size=n)] + spread * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def shared_texts() -> list[str]:
    """Every distinct non-empty text field of the real data sets."""
    texts: list[str] = []

    def add(*values: object) -> None:
        texts.extend(v.strip() for v in values if isinstance(v, str) and v.strip())

    for name in (
        "alpaca/alpaca_random_9k.json",
        "dolly/dolly_3k.json",
        "code/code_alpaca_2k.json",
        "lima/lima_1k.json",
    ):
        for r in json.loads((SHARED / name).read_text(encoding="utf-8")):
            add(r.get("instruction"), r.get("input"), r.get("output"))
    for f in sorted(glob.glob(str(SHARED / "alpaca_eval" / "*.json"))):
        for r in json.loads(Path(f).read_text(encoding="utf-8")):
            add(r.get("instruction"), r.get("output"))
    with gzip.open(SHARED / "preference" / "harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            add(r.get("chosen"), r.get("rejected"))
    for f in sorted(
        glob.glob(str(SHARED / "eval_prompts" / "*.jsonl")) + glob.glob(str(SHARED / "self_instruct" / "*.jsonl"))
    ):
        for line in Path(f).read_text(encoding="utf-8").splitlines():
            if line.strip():
                add(*json.loads(line).values())
    for r in json.loads((SHARED / "multiturn" / "sharegpt_dummy_500.json").read_text(encoding="utf-8")):
        add(*(t.get("value") for t in r.get("conversations", [])))
    return list(dict.fromkeys(texts))


def real(limit: int) -> np.ndarray | None:
    """MiniLM embeddings of the shared texts (first `limit`), cached; None without ../shared/data."""
    if not SHARED.is_dir():
        print(f"real data skipped: {SHARED} not found", file=sys.stderr)
        return None
    texts = shared_texts()[:limit]
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = cache_root() / "bench" / f"shared-minilm-{len(texts)}-{key}.npy"
    if path.exists():
        return np.load(path)
    from sentence_transformers import SentenceTransformer

    from instructsift.models import resolve_encoder

    print(f"embedding {len(texts):,} real texts once (cached at {path}) ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    model = SentenceTransformer(str(resolve_encoder("embedded")[0]), device="cpu")
    X = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    print(f"  {time.perf_counter() - t:.0f} s", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def timed(fn, *args):  # noqa: ANN001, ANN202
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=5_000)
    ap.add_argument("--quick", action="store_true", help="10,000 rows, 1,000 centres")
    ap.add_argument("--no-real", action="store_true", help="synthetic data only")
    args = ap.parse_args()
    if args.quick:
        args.n, args.k = 10_000, 1_000
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus {os.cpu_count()}, load average {load:.1f}, numpy {np.__version__}", flush=True)
    sets = [("synthetic (1,000 clusters)", synthetic(args.n, args.dim))]
    if not args.no_real:
        X = real(args.n)
        if X is not None:
            sets.append(("real: MiniLM, ../shared/data", X))
    rows = []
    for name, X in sets:
        k = min(args.k, len(X))
        ours, t_ours = timed(kcenter_greedy, X, k, [0])
        plain, t_plain = timed(naive_kcenter, X, k, 0)
        if np.array_equal(ours, plain):
            same = "all"
        else:  # float32 rounding differs between GEMM and matrix-vector: a near-tie may go either way
            t = int(np.argmax(ours != plain))
            same = f"first {t:,}, then a tie (float64 gap {tie_gap(X, ours[:t], ours[t], plain[t]):.0e})"
        rows.append(
            (
                name,
                f"{len(X):,} x {X.shape[1]}",
                f"{k:,}",
                f"{t_plain:.1f}",
                f"{t_ours:.1f}",
                f"{t_plain / t_ours:.1f}x",
                same,
            )
        )
    head = ("data", "rows x dim", "centres", "plain loop s", "instructsift s", "speed-up", "same centres")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
