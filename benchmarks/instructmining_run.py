"""InstructMining on ../shared/data on a CPU: the experiment design, the rule fitted on fine-tuned subsets, the
BlendSearch subset-size search and the even sweep (the curve), through `instructsift design` and `instructsift mine`.

    nice python benchmarks/instructmining_run.py            # the real run: ~45-60 min on an idle 2-core CPU
    python benchmarks/instructmining_run.py --smoke         # the same chain, tiny: ~2-3 min

The base model is the embedded SmolLM2-135M-Instruct (LoRA, bf16 where the CPU has it); the held-out set is
gpt4's AlpacaEval answers to instructions in no training subset; the subsets mix the five AlpacaEval answer
files (gpt4, claude-2, text_davinci_003, alpaca-7b, falcon-7b-instruct answering the same instructions) with
Alpaca, Dolly, LIMA and Code Alpaca at Dirichlet proportions. The reward indicator is the OFFLINE STAND-IN
(`reward_standin`: a Bradley-Terry head on MiniLM embeddings trained on preference/dpo_en_demo.json), not the
paper's OpenAssistant Pythia-1.4B reward model. Everything is cached: a rerun after a kill resumes.
It prints the rule (coefficients, standard errors, p-values), R², leave-one-out R², the best k and the curve.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# The real run: 24 subsets of 70 rows from a pool of 80 rows per source (720 in all) at 256 tokens; 12 search
# trials and a 6-point sweep over 20..600 rows. Fine-tuning runs ~270 tokens/s on an idle 2-core CPU and a row
# is ~150 tokens at 256 (~500k training tokens in all): about 5 min of indicator scoring, 20 min of subsets
# and 20 of search and sweep, plus ~5 s of loading and ~8 s of evaluation per fine-tuning.
FULL = dict(subsets=24, size=70, held_out=40, per_source=80, max_length=256, epochs=1, batch_size=4, lr=1e-3,
            min_k=20, max_k=600, trials=12, sweep=6)  # fmt: skip
# The smoke: 8 subsets of 6 rows (6 indicators + an intercept need more than 7), 3 trials, 3 sweep points.
SMOKE = dict(subsets=8, size=6, held_out=6, per_source=6, max_length=128, epochs=1, batch_size=4, lr=1e-3,
             min_k=6, max_k=24, trials=3, sweep=3)  # fmt: skip


EXTRA = {"alpaca": "alpaca/alpaca_random_9k.json", "dolly": "dolly/dolly_3k.json", "lima": "lima/lima_1k.json",
         "code_alpaca": "code/code_alpaca_2k.json"}  # beside the five AlpacaEval answer files  # fmt: skip


def commands(data: Path, out: Path, s: dict, cache: Path | None, base: str, reward: str) -> list[list[str]]:
    cli = [sys.executable, "-m", "instructsift.cli"]
    sources = [str(p) for p in sorted((data / "alpaca_eval").glob("*.json"))]  # named by their stems: gpt4, ...
    sources += [f"{name}={data / path}" for name, path in EXTRA.items()]
    design = [*cli, "design", *sources, "--eval-source", "gpt4", "-o", str(out / "design"), "--subsets", str(s["subsets"]),
              "--size", str(s["size"]), "--held-out", str(s["held_out"]), "--per-source", str(s["per_source"])]  # fmt: skip
    mine = [*cli, "mine", str(out / "design"), "-o", str(out / "mining"), "--base", base,
            "--reward-model", f"standin:{reward}", "--epochs", str(s["epochs"]), "--batch-size", str(s["batch_size"]),
            "--max-length", str(s["max_length"]), "--lr", str(s["lr"]), "--min-k", str(s["min_k"]),
            "--max-k", str(s["max_k"]), "--trials", str(s["trials"]), "--sweep", str(s["sweep"])]  # fmt: skip
    if cache:
        mine += ["--cache-dir", str(cache)]
    return [design, mine]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny design and search (~2-3 min)")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder [../shared/data]")
    ap.add_argument("--out", type=Path, default=None, help="output folder [benchmarks/out/instructmining(-smoke)]")
    ap.add_argument("--cache-dir", type=Path, default=None, help="instructsift's cache [its default]")
    ap.add_argument("--base", default="embedded", help="the base model fine-tuned on every subset")
    ap.add_argument("--reward", type=Path, default=None, help="preference file of the reward stand-in")
    a = ap.parse_args(argv)
    s = SMOKE if a.smoke else FULL
    out = a.out or ROOT / "benchmarks" / "out" / ("instructmining-smoke" if a.smoke else "instructmining")
    reward = a.reward or a.data / "preference" / "dpo_en_demo.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    t0 = time.monotonic()
    for cmd in commands(a.data, out, s, a.cache_dir, a.base, str(reward)):
        print("$", shlex.join(["instructsift", *cmd[3:]]), flush=True)
        if cmd[3] == "design" and (out / "design" / "design.json").is_file():
            print("(design exists: kept)", flush=True)  # the same settings draw the same design; keep the file
            continue
        rc = subprocess.run(cmd, env=env).returncode
        if rc:
            return rc
    summary = json.loads((out / "mining" / "summary.json").read_text(encoding="utf-8"))
    rule = summary["rule"]
    print(f"\nInstructMining on {a.data} ({'smoke' if a.smoke else 'full'}): {summary['subsets']} subsets, "
          f"wall {time.monotonic() - t0:.0f}s ({summary['trained_now']} fine-tunings in this run)")  # fmt: skip
    print(f"{'indicator':16} {'coef':>12} {'std err':>10} {'p':>8}")
    for name, coef in [("const", rule["intercept"]), *rule["coef"].items()]:
        print(f"{name:16} {coef:12.4g} {rule['bse'].get(name, float('nan')):10.3g} "
              f"{rule['pvalues'].get(name, float('nan')):8.3g}")  # fmt: skip
    for name, why in rule["dropped"].items():
        print(f"{name:16} dropped: {why}")
    print(f"R² {rule['rsquared']:.3f} · leave-one-out R² {rule['loo_rsquared']:.3f} · best k {summary['best_k']} "
          f"of {summary['pool']} (eval loss {summary['best_loss']:.4f})")  # fmt: skip
    lines = (out / "mining" / "search.jsonl").read_text(encoding="utf-8").splitlines()[1:]
    trials = sorted({(d["k"], d["loss"], d["how"]) for d in map(json.loads, lines)})
    print("trials (k: eval loss, search or sweep): " + ", ".join(f"{k}: {v:.4f} {h}" for k, v, h in trials))
    print(f"curve → {summary['curve']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
