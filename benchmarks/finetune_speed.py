"""Fine-tuning speed: tokens/s of LoRA vs full fine-tuning, bf16 mixed precision vs fp32.

    .venv/bin/python benchmarks/finetune_speed.py [--model embedded] [--rows 32] [--max-length 256]

Trains each configuration for one epoch on the same real Alpaca rows (../shared/data) and prints a
side-by-side table with each configuration's ratio to full fine-tuning in fp32. Tokens/s counts the
non-padding tokens of the training sequences over the whole `Trainer.train` call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_random_9k.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--configs", default="full:float32,full:bfloat16,lora:float32,lora:bfloat16")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"real data not found at {DATA} (see SOURCES.md in the shared folder)")

    import torch

    from instructsift.data import read
    from instructsift.models.loader import resolve
    from instructsift.train.finetune import FinetuneConfig, finetune

    rows = read(DATA, on_error="skip").examples[: args.rows]
    resolve(args.model)  # convert once before timing
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.configs.split(","):
            mode, dtype = spec.split(":")
            config = FinetuneConfig(
                lora=mode == "lora",
                epochs=1,
                batch_size=args.batch_size,
                max_length=args.max_length,
                dtype=dtype,
                device=args.device,
                checkpoint_steps=10**9,
                warmup_ratio=0.0,
            )
            r = finetune(rows, args.model, Path(tmp) / spec.replace(":", "-"), config, progress=False)
            results.append((mode, dtype, r))
            print(
                f"{mode:5s} {dtype:9s} {r.tokens_per_second:9.1f} tok/s  ({r.steps} steps, {r.seconds:.1f} s)",
                file=sys.stderr,
            )

    base = next((r.tokens_per_second for m, d, r in results if (m, d) == ("full", "float32")), None)
    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else f"cpu x{torch.get_num_threads()} threads"
    print(
        f"\nfine-tuning speed: {args.model}, {args.rows} rows, max_length {args.max_length}, batch {args.batch_size}, {device}"
    )
    print(f"{'mode':6s} {'precision':10s} {'tokens/s':>10s} {'seconds':>8s} {'vs full fp32':>13s}")
    for mode, dtype, r in results:
        ratio = f"{r.tokens_per_second / base:.2f}x" if base else "-"
        print(f"{mode:6s} {dtype:10s} {r.tokens_per_second:10.1f} {r.seconds:8.1f} {ratio:>13s}")


if __name__ == "__main__":
    main()
