"""The experiment runner: fine-tune one base model with identical settings on many subsets of one data set
and evaluate each tuned model's answer loss on a held-out set, each subset one cached trial
(`train.trial`: the key, the cache, `trials_dir`, resuming).

    runner = ExperimentRunner(data, held_out, base="gemma3-270m", config=FinetuneConfig(epochs=1))
    table = runner.run({"superfiltering": rows_a, "random-0": rows_b})   # -> [Trial, ...]
    loss = runner.loss(rows_c)                  # or runner(rows_c): any subset -> its eval loss

`compare`, InstructMining's rule fitting and its subset-size search are built on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..train.trial import Trial, TrialRunner


class ExperimentRunner(TrialRunner):
    """Runs many trials of one data set, held-out set, base model and settings (`TrialRunner`'s arguments):
    every subset's trial in order with overall progress (`run`), or any subset's eval loss (`loss`)."""

    def run(self, subsets: Mapping[str, Sequence[int]], on_trial: Callable[[Trial], None] | None = None) -> list[Trial]:
        """Every subset's trial, in order: finished ones from the cache, then the rest, with a progress
        line per trial and overall (rows done of all rows to train, elapsed, ETA). `on_trial` sees each."""
        from ..progress import PlainProgress

        plan = {name: self.positions(s) for name, s in subsets.items()}
        done = {name: self.cached(rows, name) for name, rows in plan.items()}
        total = sum(len(rows) for rows in plan.values())
        first = sum(len(plan[n]) for n, t in done.items() if t is not None)
        cached = sum(t is not None for t in done.values())
        self.log(f"{len(plan)} trials: {cached} from the cache, {len(plan) - cached} to run")
        out: list[Trial] = []
        overall = PlainProgress(self.progress, interval=0)
        task = overall.add_task("trials (rows trained)", total=total, completed=first)
        for i, (name, rows) in enumerate(plan.items(), 1):
            trial = done[name]
            if trial is None:
                self.log(f"trial {i}/{len(plan)} {name}: fine-tuning on {len(rows)} rows")
                t0 = time.monotonic()
                trial = self.trial(name, rows)
                overall.advance(task, len(rows))
                took = f"{time.monotonic() - t0:.0f}s"
            else:
                took = "cached"
            self.log(f"trial {i}/{len(plan)} {name}: eval loss {trial.eval_loss:.4f} ({took})")
            out.append(trial)
            if on_trial is not None:
                on_trial(trial)
        return out

    def loss(self, subset: Sequence[int]) -> float:
        """The eval loss of fine-tuning on `subset` (cached): the `f(subset) -> loss` a search calls."""
        return self.trial(f"subset-{self.key(subset)}", subset).eval_loss

    __call__ = loss


def table(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """The result as rows of (name, n, tokens, eval_loss, seconds, settings)."""
    return [
        {"name": t.name, "n": t.n, "tokens": t.tokens, "eval_loss": t.eval_loss, "seconds": t.seconds,
         "settings": t.settings}
        for t in trials
    ]  # fmt: skip


__all__ = ["ExperimentRunner", "Trial", "table"]
