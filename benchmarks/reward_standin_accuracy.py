"""The offline reward stand-in's held-out pair accuracy: how often does the Bradley-Terry head (trained by
`scoring.reward_standin.train_head` on MiniLM embeddings of the responses) rank a preference pair the human
way on pairs it never saw? Beside the length baseline (the longer response ranked higher; ties count half).

For each preference file: its first `--limit` pairs (identical sides dropped, as the stand-in does), split at
random (seeds 0..`--seeds`-1) into 2/3 training and 1/3 held out; each response is embedded once with the
embed scorer the stand-in uses (all-MiniLM-L6-v2, text "response"), and the head is trained by `train_head`
itself on the training pairs with C = `--C`. Prints one JSON line per file: the mean and range of the
held-out accuracy over the seeds, and the length baseline's on the same held-out pairs.

Run: PYTHONPATH=src OMP_NUM_THREADS=1 nice python benchmarks/reward_standin_accuracy.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PREFERENCE = ROOT.parent / "shared" / "data" / "preference"
FILES = {"dpo_en_demo.json": 300, "harmless-base-test.jsonl.gz": 900}


class Precomputed:
    """An encoder over vectors computed once (`train_head` calls only `encode`)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def accuracy(pairs: list[tuple[str, str]], embed: Precomputed, seeds: int, C: float) -> dict[str, object]:
    from instructsift.scoring.reward_standin import train_head

    heads, lengths = [], []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(pairs))
        cut = len(pairs) * 2 // 3
        train, held = [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]
        w, _, _ = train_head(train, embed, C)
        D = embed.encode([c for c, _ in held]) - embed.encode([r for _, r in held])
        heads.append(float(np.mean(D @ w > 0)))
        longer = np.sign([len(c) - len(r) for c, r in held])
        lengths.append(float(np.mean((longer + 1) / 2)))
    return {"held_out_pairs": len(pairs) - len(pairs) * 2 // 3, "head_mean": round(float(np.mean(heads)), 3),
            "head_min": round(min(heads), 3), "head_max": round(max(heads), 3),
            "length_mean": round(float(np.mean(lengths)), 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--C", type=float, default=1.0)
    a = ap.parse_args()
    from instructsift.scoring.embed import Embed
    from instructsift.scoring.reward_standin import read_pairs

    embedder = Embed(text="response")
    for name, limit in FILES.items():
        t0 = time.monotonic()
        pairs = read_pairs(PREFERENCE / name, limit)
        texts = sorted({t for pair in pairs for t in pair})
        vectors = dict(zip(texts, embedder.encode(texts).astype(np.float64), strict=True))
        result = accuracy(pairs, Precomputed(vectors), a.seeds, a.C)
        print(json.dumps({"file": name, "pairs": len(pairs), "seeds": a.seeds, "C": a.C, **result,
                          "seconds": round(time.monotonic() - t0)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
