"""Fine-tuning speed: instructsift's LoRA `finetune` against TRL's `SFTTrainer` and a bare bf16 forward.

    .venv/bin/python benchmarks/finetune_speed.py [--model embedded] [--rows 32] [--max-length 256] [--rounds 3] [--threads N]

On the same real Alpaca rows (../shared/data), one epoch, batch 8, LoRA r16/alpha 32/dropout 0.05 on all
linear layers, lr 2e-4, no warmup:

  (a) TRL's `SFTTrainer` with that LoRA config and its documented defaults otherwise: a prompt-completion
      data set, so completion-only loss (`completion_only_loss=None`), `bf16=True` mixed precision over
      the model loaded in fp32, `gradient_checkpointing=True`, no packing, no padding-free batches;
  (b) instructsift's `finetune` (`dtype` bf16 on a CPU with native bf16, else as `--dtype` says);
  (c) a bare forward of the model loaded in bf16 (no gradients, logits on every position), over the same
      sequences in length-sorted, right-padded batches of the same size.

LoRA's forward + backward costs about two forwards (no weight gradients for the frozen base), so c/2 is
the bound for a LoRA training step. Tokens/s counts the non-padding tokens of the training sequences over
the training (or forward) loop only, not model loading. The three run interleaved for `--rounds` rounds
(a, b, c, a, b, c, ...) so that a busy machine slows them alike; the table shows each one's median and the
ratios b/a and b/(c/2) of the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_random_9k.json"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}
LR = 2e-4


def prompts_and_answers(examples, tokenizer) -> list[tuple[str, str]]:
    """The Alpaca-template prompt and the answer of each single-turn example, as instructsift renders them."""
    from instructsift.scoring.templates import get_template, turn_texts

    template = get_template("alpaca")
    return [turn_texts(ex, template, tokenizer)[0] for ex in examples if len(ex.answer_turns) == 1]


def run_trl(model_path: str, pairs, args, out: Path) -> tuple[int, float]:
    """(a): TRL's SFTTrainer with LoRA; its defaults for everything but the shared settings above."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    hf_logging.set_verbosity_error()
    data = Dataset.from_list([{"prompt": p, "completion": a} for p, a in pairs])
    config = SFTConfig(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=LR,
        use_cpu=args.device == "cpu",
        bf16=args.dtype == "bfloat16",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=42,
    )
    trainer = SFTTrainer(
        model=model_path, args=config, train_dataset=data, peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA)
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    t0 = time.perf_counter()
    trainer.train()
    return tokens, time.perf_counter() - t0


def run_instructsift(examples, args, out: Path) -> tuple[int, float]:
    """(b): `finetune` with the same LoRA settings."""
    from instructsift.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        lora=True,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        lora_targets=LORA["target_modules"],
        lr=LR,
        epochs=1,
        batch_size=args.batch_size,
        max_length=args.max_length,
        dtype=args.dtype,
        device=args.device,
        checkpoint_steps=10**9,
        warmup_ratio=0.0,
    )
    r = finetune(examples, args.model, out, config, progress=False, resume=False)
    return r.tokens, r.seconds


def run_forward(model_path: str, examples, args) -> tuple[int, float]:
    """(c): the bare bf16 forward over the training sequences, padded batches of the training batch size."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructsift.train.finetune import build_sequences

    tok = AutoTokenizer.from_pretrained(model_path)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    seqs = sorted((b.sequences[0].ids for b in build_sequences(examples, "alpaca", tok, args.max_length)), key=len)
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16).to(device).eval()
    batches = []
    for i in range(0, len(seqs), args.batch_size):
        rows = seqs[i : i + args.batch_size]
        width = max(map(len, rows))
        ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
        batches.append((ids, mask))
    with torch.inference_mode():
        model(input_ids=batches[0][0][:1, :8])  # warm up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for ids, mask in batches:
            model(input_ids=ids, attention_mask=mask, use_cache=False)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    return sum(map(len, seqs)), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtype", default="auto", help="mixed precision of (a) and (b): auto, bfloat16 or float32")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", default="a,b,c", help="a subset of a,b,c to run")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own choice)")
    args = ap.parse_args()
    if not DATA.exists():
        sys.exit(f"real data not found at {DATA} (see SOURCES.md in the shared folder)")

    import torch
    from transformers import AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    from instructsift.data import read
    from instructsift.models import choose_device
    from instructsift.models.loader import resolve
    from instructsift.train.finetune import mixed_precision

    args.device = choose_device(args.device)
    args.dtype = mixed_precision(args.dtype, args.device)
    examples = read(DATA, on_error="skip").examples[: args.rows]
    path = resolve(args.model).path  # converted once, before any timing
    pairs = prompts_and_answers(examples, AutoTokenizer.from_pretrained(path))
    runs = {"a": "TRL SFTTrainer + LoRA", "b": "instructsift finetune", "c": "bare bf16 forward"}
    chosen = [k for k in args.only.split(",") if k in runs]
    rates: dict[str, list[float]] = {k: [] for k in chosen}
    load = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for key in chosen:
                load.append(os.getloadavg()[0])
                out = Path(tmp) / f"{key}{n}"
                if key == "a":
                    tokens, seconds = run_trl(path, pairs, args, out)
                elif key == "b":
                    tokens, seconds = run_instructsift(examples, args, out)
                else:
                    tokens, seconds = run_forward(path, examples, args)
                rates[key].append(tokens / seconds)
                print(f"round {n + 1} ({key}) {runs[key]}: {tokens} tokens, {seconds:.1f} s, {tokens / seconds:.1f} tok/s",
                      file=sys.stderr)  # fmt: skip

    med = {k: statistics.median(v) for k, v in rates.items()}
    where = "cuda" if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"\nfine-tuning speed: {args.model}, {len(examples)} rows, max_length {args.max_length}, batch {args.batch_size}, "
        f"{args.dtype} mixed precision, {where}, median of {args.rounds} interleaved rounds, "
        f"load average {min(load):.1f}-{max(load):.1f}"
    )
    print(f"{'run':28s} {'tokens/s':>9s} {'each round':>24s}")
    for key in chosen:
        print(f"({key}) {runs[key]:24s} {med[key]:9.1f} {' '.join(f'{r:.1f}' for r in rates[key]):>24s}")
    if "a" in med and "b" in med:
        print(f"b/a      {med['b'] / med['a']:.2f}x  (target >= 2)")
    if "b" in med and "c" in med:
        print(f"b/(c/2)  {med['b'] / (med['c'] / 2):.2f}   (target >= 0.5)")


if __name__ == "__main__":
    main()
