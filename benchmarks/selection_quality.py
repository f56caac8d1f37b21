"""Selection quality: does each method's pick beat random picks of the same size, and how close does it get to
all the data? The real runs of docs/compare.md (`instructsift compare` on real data), reproducible in one command.

    .venv/bin/python benchmarks/selection_quality.py                 # the first run, at equal counts (about an hour)
    .venv/bin/python benchmarks/selection_quality.py --smoke         # a few minutes: checks it works end to end
    .venv/bin/python benchmarks/selection_quality.py --budget-tokens 0.05,0.1 --pool 1000 \
        --methods superfiltering,cherry,alpagasus,ltd,lima,longest --human-n 50
                                   # the docs' run at equal training tokens, with a second held-out set of human
                                   # answers (19 trials: about 2 h 30 min on this 2-core CPU, 41 min of it all data)

The pool is the first `--pool` rows of ../shared/data/alpaca/alpaca_random_9k.json (itself a uniform random
sample of Stanford Alpaca 52k, so its first rows are one too); the held-out set is `--eval-n` rows of
../shared/data/alpaca_eval/gpt4.json (GPT-4's answers to AlpacaEval's instructions) drawn with
`numpy.random.default_rng(0)`. Both are written to `<out>.inputs/` and the comparison to `<out>/`
(results.json, results.md, loss.png); every trial is cached, and each finished one is kept in benchmarks/trials/
(committed; `--trials-dir`), so a killed run resumes where it stopped, on this machine or on another.
`--human-n N` adds a second held-out set: N human-written Dolly answers (../shared/data/dolly/dolly_3k.json,
drawn with seed 0; none is in the Alpaca pool). `--budget-tokens` makes every pick fill the same trained
answer tokens (a list: a curve), instead of `--budget`'s equal example counts.

Method settings, said here because the table depends on them: the local AlpaGasus judge is the embedded
SmolLM2-135M-Instruct, which puts little probability on the score tokens, so its ratings are kept whatever
that mass (`judge_min_mass=0`) and ranked without the 4.5 threshold (`threshold=0`); LIMA's length window
starts at 0 characters instead of 1,200 (Alpaca's answers are short: the window would leave fewer rows than
the budget), so LIMA here is its rules, dedup and "longest answers first".

Why this scale: fine-tuning is the cost. All trials together train on (methods + random seeds) x budget + pool
rows per epoch (the defaults: pool 500, budget 10% = 50, 5 methods, 3 seeds, all data, 1 epoch: 900 rows,
about 109K tokens); with the selections' scoring and the evaluations the whole run took 54 minutes on this
2-core CPU (2026-12-03, the table in docs/compare.md). A 5% budget of this
pool would be 25 rows, 3 optimizer steps: too few for the picks to differ from one another.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
POOL = SHARED / "alpaca" / "alpaca_random_9k.json"
HELD_OUT = SHARED / "alpaca_eval" / "gpt4.json"
HUMAN = SHARED / "dolly" / "dolly_3k.json"
# The docs' runs fine-tune for hours: each finished trial is kept here (committed), so that a run stopped on one
# machine resumes on another, which has not the cache (`compare --trials-dir`).
TRIALS = ROOT / "benchmarks" / "trials"
METHODS = "superfiltering,cherry,alpagasus,ltd,lima"
OPTIONS = {"alpagasus": {"judge_min_mass": 0, "threshold": 0}, "lima": {"min_chars": 0}}
# A few minutes on an idle 2-core CPU: a tiny pool and held-out set, two cheap methods, the embedded model;
# batch 2, so that a 4-row pick is 2 optimizer steps (the first, warmup, is at learning rate 0).
SMOKE = dict(pool=40, eval_n=6, budget=0.1, methods="superfiltering,lima", base="embedded", random_seeds=2,
             epochs=1, max_length=128, batch_size=2)  # fmt: skip


def human_inputs(folder: Path, n: int) -> Path:
    """`n` human-written Dolly rows drawn with seed 0, as a second held-out set."""
    import numpy as np

    rows = json.loads(HUMAN.read_text())
    picked = sorted(np.random.default_rng(0).choice(len(rows), size=n, replace=False).tolist())
    target = folder / f"dolly_human_held_out_{n}.json"
    target.write_text(json.dumps([rows[i] for i in picked], ensure_ascii=False, indent=1))
    return target


def inputs(folder: Path, pool: int, eval_n: int) -> tuple[Path, Path]:
    """Write the sub-pool and the held-out subset (see the module docstring)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rows = json.loads(POOL.read_text())
    held = json.loads(HELD_OUT.read_text())
    if pool > len(rows) or eval_n > len(held):
        sys.exit(f"--pool is at most {len(rows)} and --eval-n at most {len(held)}")
    picked = sorted(np.random.default_rng(0).choice(len(held), size=eval_n, replace=False).tolist())
    held_out = [{"instruction": held[i]["instruction"], "input": "", "output": held[i]["output"]} for i in picked]
    pool_file, eval_file = folder / f"alpaca_pool_{pool}.json", folder / f"gpt4_held_out_{eval_n}.json"
    pool_file.write_text(json.dumps(rows[:pool], ensure_ascii=False, indent=1))
    eval_file.write_text(json.dumps(held_out, ensure_ascii=False, indent=1))
    return pool_file, eval_file


def parse_trial_args(ap: argparse.ArgumentParser, name: str, smoke: dict, epochs: float) -> argparse.Namespace:
    """The options every comparison benchmark takes (the base model, random seeds, fine-tuning, output, cache,
    --smoke), parsed; with --smoke, `smoke`'s settings and an `_smoke` output folder. Exits without the data."""
    ap.add_argument("--base", default="gemma3-270m", help="the base model fine-tuned on every pick")
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=epochs)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / name)
    ap.add_argument("--cache-dir", type=Path, default=None, help="[$INSTRUCTSIFT_CACHE or ~/.cache/instructsift]")
    ap.add_argument(
        "--trials-dir", type=Path, default=TRIALS, help="finished trials kept in git, so a run resumes on any machine"
    )
    ap.add_argument("--smoke", action="store_true", help="a few-minute version: " + json.dumps(smoke))
    args = ap.parse_args()
    if args.smoke:
        for k, v in smoke.items():
            setattr(args, k, v)
        args.out = args.out.with_name(args.out.name + "_smoke")
        args.trials_dir = None if args.trials_dir == TRIALS else args.trials_dir  # smoke trials stay in the cache
    if not POOL.exists() or not HELD_OUT.exists():
        sys.exit(f"real data not found under {SHARED} (see SOURCES.md in the shared folder)")
    return args


def trial_settings(args: argparse.Namespace) -> dict:
    """The `CompareSpec` fields that `parse_trial_args`' options set: base, random seeds, fine-tuning, cache."""
    # A checkpoint every 10 steps (not in the trial's key): a trial stopped midway resumes near where it was.
    finetune = {"epochs": args.epochs, "max_length": args.max_length, "batch_size": args.batch_size,
                "device": args.device, "checkpoint_steps": 10}  # fmt: skip
    return {"base": args.base, "random_seeds": args.random_seeds, "finetune": finetune,
            "cache_dir": str(args.cache_dir) if args.cache_dir else None,
            "trials_dir": str(args.trials_dir) if args.trials_dir else None}  # fmt: skip


def run_compare(spec: object, out: Path) -> tuple[dict, float]:
    """`compare` with its log on stderr, then its results.md printed; the result and the seconds it took."""
    from instructsift.experiments.compare import compare

    t0 = time.monotonic()
    r = compare(spec, out, overwrite=True, log=lambda m: print(m, file=sys.stderr, flush=True))
    print((out / "results.md").read_text(encoding="utf-8"))
    return r, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=500, help="rows of alpaca_random_9k to select from")
    ap.add_argument("--eval-n", type=int, default=50, help="held-out rows of alpaca_eval/gpt4.json")
    ap.add_argument("--budget", type=float, default=0.1, help="ratio of the pool (or a count, >= 1)")
    ap.add_argument(
        "--budget-tokens", default=None, help="instead of --budget: ratios of the pool's trained tokens, 0.05,0.1"
    )
    ap.add_argument("--human-n", type=int, default=0, help="a second held-out set of this many human Dolly answers")
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--no-full", action="store_true", help="leave out the all-data trial")
    args = parse_trial_args(ap, "selection_quality", SMOKE, epochs=1.0)

    from instructsift.experiments.compare import CompareSpec
    from instructsift.selection.size import parse_budget

    folder = args.out.with_name(args.out.name + ".inputs")
    pool_file, eval_file = inputs(folder, args.pool, args.eval_n)
    evals = [str(eval_file)] + ([str(human_inputs(folder, args.human_n))] if args.human_n else [])
    budget = int(args.budget) if args.budget >= 1 else args.budget
    tokens = parse_budget(args.budget_tokens, "budget_tokens", "tokens") if args.budget_tokens else None
    spec = CompareSpec(
        data=str(pool_file),
        eval=evals,
        methods=[m for m in args.methods.split(",") if m],
        budget=None if tokens else budget,
        budget_tokens=tokens,
        full=not args.no_full,
        options={m: o for m, o in OPTIONS.items() if m in args.methods.split(",")},
        **trial_settings(args),
    )
    r, seconds = run_compare(spec, args.out)
    points = r.get("points") or [r]
    trials = sum(len(p.get("trials", p.get("rows", []))) for p in points)
    print(f"{trials} trials over {len(points)} budget(s), {seconds:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
