"""IFD scoring speed: the papers' loop vs instructsift vs a bare forward pass, in one process.

    python benchmarks/ifd_speed.py [--rows 48] [--model embedded] [--method cherry] [--repeats 2]

Same model, same real rows (../shared/data/alpaca/alpaca_random_9k.json):
  (a) papers' loop: as Cherry LLM's `data_analysis.py` — fp32, batch 1, the whole text re-tokenized,
      logits at every position plus hidden states, then a Python loop over tokens with `.item()`.
  (b) instructsift: `IFD` as the CLI runs it (auto dtype, token-budget batches capped at 10% padding,
      a shared template prefix run once per batch into a key/value cache, LM head on answers only).
  (b32) instructsift forced to fp32, to separate the dtype's gain from the rest.
  (c) a bare forward pass `model(input_ids)` over exactly (b)'s token sequences, same dtype, in the same
      length-sorted, padding-capped batches but without the shared prefix: what a plain batched scorer costs.
  (c0) the decoder alone over those batches (no LM head at all).
Prints rows/s and tokens/s (tokens = the tokens of (b)'s sequences) and the ratios b/a and b/c; b/c > 1
is the prefix cache saving more than the LM head and the loss cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def papers_loop(lm32, examples, method: str, max_length: int) -> None:
    """Cherry LLM's data_analysis.py (`--mod cherry`): per example, two forward passes at batch 1 with
    hidden states, then log-softmax and `.item()` at every position in a Python loop."""
    import torch

    from instructsift.scoring.templates import get_template

    tok, model = lm32.tokenizer, lm32.model
    template = get_template("alpaca" if method == "cherry" else "none")
    log_softmax = torch.nn.LogSoftmax(dim=-1)
    nll = torch.nn.NLLLoss(reduction="none")
    for ex in examples:
        prompt = template.render(ex.messages[:1], tok)
        answer = ex.response
        marker = template.marker if method == "cherry" else ""
        for text in (prompt + answer, marker + answer):
            ids = tok(text, return_tensors="pt", truncation=True, max_length=max_length).input_ids.to(lm32.device)
            start = len(tok(text[: text.rfind(answer)]).input_ids)
            labels = ids.clone()
            labels[0, :start] = -100
            with torch.no_grad():
                out = model(ids, labels=labels, output_hidden_states=True)
            losses = []
            for i in range(1, ids.shape[1]):
                losses.append(nll(log_softmax(out.logits[0, i - 1]).unsqueeze(0), ids[0, i].unsqueeze(0)).item())
            _ = out.loss.item(), losses


def bare_forward(scorer, examples, decoder_only: bool) -> None:
    import torch

    from instructsift.scoring.losses import batch_tokens_for, plan_batches

    seqs = [s for turns in scorer.plan(examples) for t in turns if t.cond for s in (t.cond, t.direct)]
    model = scorer._lm.model
    run = model.get_decoder() if decoder_only else model
    for idx in plan_batches([len(s.ids) for s in seqs], batch_tokens_for(scorer._lm.device, scorer.batch_tokens)):
        width = max(len(seqs[i].ids) for i in idx)
        ids = torch.zeros((len(idx), width), dtype=torch.long)
        for b, i in enumerate(idx):
            ids[b, : len(seqs[i].ids)] = torch.tensor(seqs[i].ids)
        with torch.inference_mode():
            run(input_ids=ids.to(scorer._lm.device), use_cache=False)
        if scorer._lm.device.startswith("cuda"):
            torch.cuda.synchronize()


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=48)
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--method", default="cherry", choices=["cherry", "superfiltering"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", default=str(SHARED / "alpaca" / "alpaca_random_9k.json"))
    args = ap.parse_args()

    import torch

    from instructsift.data import read
    from instructsift.models import load_causal_lm
    from instructsift.scoring.ifd import IFD

    examples = read(args.data, on_error="skip").examples[: args.rows]
    fast = IFD(model=args.model, method=args.method)
    lm = fast.load()
    lm32 = load_causal_lm(args.model, dtype="float32", device=lm.device)
    fp32 = IFD(model=lm32, method=args.method)
    tokens = sum(len(s.ids) for turns in fast.plan(examples) for t in turns if t.cond for s in (t.cond, t.direct))

    def ours(scorer):
        return lambda: [r for chunk in scorer.score(examples) for r in chunk]

    ours(fast)()  # warm-up: first calls pay one-off allocation and kernel selection
    jobs = {
        "a  papers' loop (fp32, batch 1)": lambda: papers_loop(lm32, examples, args.method, fast.max_length),
        f"b  instructsift ({str(lm.dtype).replace('torch.', '')})": ours(fast),
        "b32 instructsift (float32)": ours(fp32),
        "c  bare forward, same batches": lambda: bare_forward(fast, examples, decoder_only=False),
        "c0 decoder only, same batches": lambda: bare_forward(fast, examples, decoder_only=True),
    }
    # Interleaved repeats, best of each: on a shared, noisy machine the minimum is the steadiest estimate.
    runs = {name: float("inf") for name in jobs}
    for _ in range(args.repeats):
        for name, job in jobs.items():
            runs[name] = min(runs[name], timed(job))
    print(
        f"\nIFD speed: {args.model} ({lm.source.fingerprint}), method {args.method}, {len(examples)} rows, "
        f"{tokens} tokens, {torch.get_num_threads()} threads, {lm.device}"
    )
    print(f"{'run':36} {'seconds':>8} {'rows/s':>8} {'tokens/s':>9}")
    for name, sec in runs.items():
        print(f"{name:36} {sec:8.2f} {len(examples) / sec:8.2f} {tokens / sec:9.0f}")
    t = list(runs.values())
    print(f"\nb/a  = {t[0] / t[1]:.2f}x  (target >= 3)")
    print(f"b32/a = {t[0] / t[2]:.2f}x  (batching alone, same dtype as a)")
    print(f"b/c  = {t[3] / t[1]:.2f}   (target >= 0.85)")
    print(f"b/c0 = {t[4] / t[1]:.2f}   (against the decoder alone)")


if __name__ == "__main__":
    main()
