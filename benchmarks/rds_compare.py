"""Target-aware selection, the evidence (issue 22): does RDS+ pick Alpaca rows that serve AlpacaEval's tasks
better than random picks and the longest answers, at equal trained tokens?

    .venv/bin/python benchmarks/rds_compare.py             # the docs' run (docs/methods/rds.md, "Evidence")
    .venv/bin/python benchmarks/rds_compare.py --smoke     # checks it works end to end (10 min of CPU)

The 805 AlpacaEval instructions (../shared/data/alpaca_eval/gpt4.json) are shuffled with
`numpy.random.default_rng(--seed)` and split: the first `--targets-n` are the targets (instructions and their
AlpacaEval subset, `dataset`, as the task field: five tasks; their answers are not written, so not used), the
next `--eval-n` the held-out set (GPT-4's answers: each tuned model's answer loss). The two splits share no
row. The pool is the first `--pool` rows with a non-empty answer of ../shared/data/alpaca/alpaca_random_9k.json
(a uniform random sample of Alpaca 52k; a row with an empty answer, as row 1461, is skipped). The arms: `rds` (RDS+ on the base model's
hidden states), `rds-white` (CRDS-W: whitened first), `longest` and `--random-seeds` random picks, each filling
the same `--budget-tokens` share of the pool's trained answer tokens (5%). Every trial goes through
`instructsift compare` (cached, and kept in benchmarks/trials/: a killed run resumes, here or on another
machine; run again, it trains nothing). Inputs are written to `<out>.inputs/`, the comparison to `<out>/`
(results.json, results.md, loss.png).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selection_quality import HELD_OUT, POOL, parse_trial_args, run_compare, trial_settings

ARMS = ["rds", "rds-white=rds", "longest"]
OPTIONS = {"rds-white": {"whiten": True}}
# About 10 min of CPU: a tiny pool, targets and held-out set, the embedded model; batch 2.
SMOKE = dict(pool=40, targets_n=10, eval_n=6, budget_tokens=0.1, base="embedded", random_seeds=2, epochs=1,
             max_length=128, batch_size=2)  # fmt: skip


def split(folder: Path, pool: int, targets_n: int, eval_n: int, seed: int) -> tuple[Path, Path, Path]:
    """Write the pool, the targets (instructions and task, no answers) and the disjoint held-out set."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rows = json.loads(POOL.read_text(encoding="utf-8"))
    asked = json.loads(HELD_OUT.read_text(encoding="utf-8"))
    if pool > len(rows) or targets_n + eval_n > len(asked):
        sys.exit(f"--pool is at most {len(rows)} and --targets-n + --eval-n at most {len(asked)}")
    order = np.random.default_rng(seed).permutation(len(asked)).tolist()
    targets = [{"instruction": asked[i]["instruction"], "dataset": asked[i]["dataset"]} for i in order[:targets_n]]
    held = [
        {"instruction": asked[i]["instruction"], "input": "", "output": asked[i]["output"]}
        for i in order[targets_n : targets_n + eval_n]
    ]
    assert not {t["instruction"] for t in targets} & {h["instruction"] for h in held}
    files = (
        folder / f"alpaca_pool_{pool}.json",
        folder / f"alpaca_eval_targets_{targets_n}_seed{seed}.jsonl",
        folder / f"alpaca_eval_held_out_{eval_n}_seed{seed}.json",
    )
    answered = [r for r in rows if r["output"].strip()]  # Alpaca has rows with an empty answer: not trainable
    files[0].write_text(json.dumps(answered[:pool], ensure_ascii=False, indent=1), encoding="utf-8")
    files[1].write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in targets), encoding="utf-8")
    files[2].write_text(json.dumps(held, ensure_ascii=False, indent=1), encoding="utf-8")
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1000, help="rows of alpaca_random_9k to select from")
    ap.add_argument("--targets-n", type=int, default=200, help="AlpacaEval instructions used as targets")
    ap.add_argument("--eval-n", type=int, default=100, help="other AlpacaEval rows held out (GPT-4's answers)")
    ap.add_argument("--seed", type=int, default=0, help="the split's seed")
    ap.add_argument("--task-field", default="dataset", help="the targets' task field ('' : each target its own)")
    ap.add_argument("--budget-tokens", type=float, default=0.05, help="share of the pool's trained answer tokens")
    ap.add_argument("--rds-model", default=None, help="the model whose hidden states rds uses [--base: the paper's]")
    ap.add_argument("--full", action="store_true", help="also fine-tune on the whole pool")
    args = parse_trial_args(ap, "rds_compare", SMOKE, epochs=3.0)

    from instructsift.experiments.compare import CompareSpec

    pool_file, target_file, eval_file = split(
        args.out.with_name(args.out.name + ".inputs"), args.pool, args.targets_n, args.eval_n, args.seed
    )
    rds_model = args.rds_model or args.base
    spec = CompareSpec(
        data=str(pool_file),
        eval=str(eval_file),
        methods=ARMS,
        budget_tokens=args.budget_tokens,
        full=args.full,
        target=str(target_file),
        target_task_field=args.task_field or None,
        options={"rds": {"model": rds_model}, **OPTIONS},
        **trial_settings(args),
    )
    r, seconds = run_compare(spec, args.out)
    print(f"{len(r['trials'])} trials ({r['trained_now']} trained now), {seconds:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
