"""SCAR ranker quality: does a ranker trained with the embedded encoder put an LLM's direct answer above the
human-written one for instructions it never saw? Beside two simple baselines, one run.

Data: ../shared/data/self_instruct/text-davinci-003_predictions.jsonl (252 user-oriented tasks; `target`
is the human answer, `response` text-davinci-003's). Rows are split by seed: half are held out, the other
half are the quads that `train_scar` trains on (its own 80/10/10 split inside). On the held-out rows we
print the pairwise accuracy (direct ranked above human) of

- the trained SCAR ranker (all-MiniLM-L6-v2 encoder);
- the same ranker untrained (random heads over the pre-trained encoder);
- answer length (the longer answer ranked higher);
- IFD's `loss_cond` on the embedded SmolLM2 (the lower conditional answer loss ranked higher).

Run: PYTHONPATH=src OMP_NUM_THREADS=2 nice python benchmarks/scar_ranking.py [--epochs 3] [--max-length 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "self_instruct" / "text-davinci-003_predictions.jsonl"


def rows() -> list[dict]:
    out = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["response"].strip() and r["target"].strip() and r["response"].strip() != r["target"].strip():
            instruction = r["instruction"].strip() + (f"\n\n{r['input']}" if r["input"].strip() else "")
            out.append({"instruction": instruction, "human": r["target"].strip(), "direct": r["response"].strip()})
    return out


def accuracy(direct: list[float], human: list[float]) -> float:
    return float(np.mean(np.asarray(direct) > np.asarray(human)))


def loss_cond(pairs: list[tuple[str, str]]) -> list[float]:
    from instructsift.data import Example, Message
    from instructsift.scoring.ifd import IFD

    examples = [Example(str(i), (Message("user", q), Message("assistant", a)), i) for i, (q, a) in enumerate(pairs)]
    scorer = IFD(model="embedded", dtype="float32", device="cpu")
    got = {h: r for chunk in scorer.score(examples) for h, r in chunk}
    return [got[ex.content_hash]["loss_cond"] for ex in examples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the trained ranker here")
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA}: not found (see ../shared/data/SOURCES.md)")

    from instructsift.models import resolve_encoder
    from instructsift.models.scar import build_ranker
    from instructsift.scoring.scar import score_pairs
    from instructsift.train.scar import Quad, ScarTrainConfig, train_scar

    data = rows()
    perm = np.random.default_rng(args.seed).permutation(len(data)).tolist()
    held = [data[i] for i in perm[: len(data) // 2]]
    train = [data[i] for i in perm[len(data) // 2 :]]
    quads = [Quad(r["instruction"], r["human"], r["direct"]) for r in train]
    out = args.out or Path(tempfile.mkdtemp(prefix="scar-bench-")) / "ranker"
    config = ScarTrainConfig(encoder="embedded", epochs=args.epochs, max_length=args.max_length, device="cpu")
    t0 = time.perf_counter()
    report = train_scar(quads, out, config, progress=False, log=print)
    train_s = time.perf_counter() - t0

    from instructsift.models.scar import load_ranker

    d_pairs = [(r["instruction"], r["direct"]) for r in held]
    h_pairs = [(r["instruction"], r["human"]) for r in held]
    results: list[tuple[str, float]] = []
    ranker = load_ranker(out)
    s = score_pairs(ranker, d_pairs + h_pairs, max_length=args.max_length)
    results.append((f"SCAR ranker, trained ({args.epochs} epochs)", accuracy(s[: len(held)], s[len(held) :])))

    import torch

    torch.manual_seed(config.seed)
    fresh, tok = build_ranker(resolve_encoder("embedded")[0], config.linear_dim)
    s = score_pairs(type(ranker)(fresh.eval(), tok, out, ""), d_pairs + h_pairs, max_length=args.max_length)
    results.append(("SCAR ranker, untrained", accuracy(s[: len(held)], s[len(held) :])))
    results.append(
        ("answer length (longer first)", accuracy([len(a) for _, a in d_pairs], [len(a) for _, a in h_pairs]))
    )
    lc = loss_cond(d_pairs + h_pairs)
    results.append(
        ("IFD loss_cond (lower first)", accuracy([-x for x in lc[: len(held)]], [-x for x in lc[len(held) :]]))
    )

    print()
    print(f"self-instruct (text-davinci-003 vs human): trained on {len(train)} rows "
          f"({report['rows']}), held out {len(held)}; training {train_s:.0f} s on CPU")  # fmt: skip
    for h in report["history"]:
        print(f"  epoch {h['epoch']}: train loss {h['train_loss']:.4f}, validation accuracy {h['val']['all']:.3f}")
    print()
    print(f"| {'ranker (held-out rows)':<40} | direct > human | vs chance |")
    print(f"|{'-' * 42}|----------------|-----------|")
    for name, acc in results:
        print(f"| {name:<40} | {acc:14.3f} | {acc / 0.5:8.2f}x |")


if __name__ == "__main__":
    main()
