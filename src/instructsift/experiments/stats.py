"""The numbers of a comparison: each arm's eval loss against the random picks' mean (Δ, z) and all the data,
paired bootstrap intervals over the held-out examples (`intervals`), the length diagnostic; `rows` is
exactly the Markdown table (`tables`)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .arms import Budget, Selected
from .compare_spec import CompareSpec
from .machine import machine


def summarize(spec: CompareSpec, budget: Budget, dataset: Any, held_out: Any, selections: list[Selected],
              trials: list[Any], kinds: dict[str, str], runner: Any) -> dict[str, Any]:  # fmt: skip
    """Everything results.json holds; `rows` is exactly the Markdown table."""
    from .. import __version__

    by_name = {t.name: t for t in trials}
    sel = {s.method: s for s in selections}
    randoms = [t.eval_loss for t in trials if kinds[t.name] == "random"]
    rand = None
    if randoms:
        rand = {
            "mean": statistics.fmean(randoms),
            "sd": statistics.stdev(randoms) if len(randoms) > 1 else None,
            "min": min(randoms),
            "max": max(randoms),
            "seeds": len(randoms),
        }
    full = by_name["full"].eval_loss if "full" in by_name else None
    rows = []
    for t in trials:
        rows.append(_row(t.name, kinds[t.name], t.n, t.tokens, t.target_tokens, t.steps, t.eval_loss, rand,
                         full, sel[t.name].seconds if t.name in sel else None, t.seconds))  # fmt: skip
    if rand is not None:
        rs = [t for t in trials if kinds[t.name] == "random"]
        rows.append(
            _row(
                f"random (mean of {len(rs)})",
                "random-mean",
                round(statistics.fmean(t.n for t in rs)),
                round(statistics.fmean(t.tokens for t in rs)),
                round(statistics.fmean(t.target_tokens for t in rs)),
                round(statistics.fmean(t.steps for t in rs)),
                rand["mean"],
                rand,
                full,
                None,
                statistics.fmean(t.seconds for t in rs),
            )  # fmt: skip
        )
    paired(rows, trials, kinds)
    return {
        "instructsift": __version__,
        "command": " ".join(["instructsift", *sys.argv[1:]]) if Path(sys.argv[0]).name == "instructsift" else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": spec.model_dump(),
        "data": {"path": dataset.path, "examples": len(dataset.examples), "rejected": len(dataset.rejects)},
        "eval": {
            "path": held_out.path,
            "examples": len(held_out.examples),
            "answer_tokens": trials[0].eval_tokens if trials else None,
        },
        "budget": budget.as_dict(),
        "base": {"model": spec.base, "fingerprint": runner.source.fingerprint},
        "finetune": asdict(runner.config),
        "machine": machine(),
        "random": rand,
        "full": full,
        "selections": {
            s.method: {
                "kept": len(s.picked),
                "ranked": len(s.positions),
                "seconds": s.seconds,
                "steps": s.steps,
                "ids": [dataset.examples[i].id for i in s.picked],
            }  # fmt: skip
            for s in selections
        },
        "trials": [{**t.as_dict(), "kind": kinds[t.name]} for t in trials],
        "rows": rows,
    }


def lengths(s: Selected, tokens: list[int]) -> dict[str, Any]:
    """The length diagnostic of a method's run (`experiments.length`): ρ of its score with trained answer
    tokens over the pool, its pick's mean tokens against the pool's."""
    from .length import of_run

    return of_run(s.run, tokens, s.picked)


def more_eval_columns(results: dict[str, Any], sets: Sequence[Any], trials: list[Any], kinds: dict[str, str]) -> None:
    """The other held-out sets: `results["more_evals"]` names them, and each row gains `more_evals`, one
    {eval_loss, delta_random, random_ci} per set (the random mean and interval as for the main set)."""
    from .intervals import mean_losses, paired_difference

    results["more_evals"] = [{"path": s.path, "examples": len(s.examples)} for s in sets]
    if not sets:
        return
    by_name = {t.name: t for t in trials}
    randoms = [t for t in trials if kinds[t.name] == "random"]
    for row in results["rows"]:
        row["more_evals"] = []
        for j in range(len(sets)):
            rand = [t.more_evals[j] for t in randoms]
            mean = statistics.fmean(r["loss"] for r in rand) if rand else None
            if row["kind"] == "random-mean":
                row["more_evals"].append({"eval_loss": mean, "delta_random": 0.0 if rand else None, "random_ci": None})
                continue
            mine = by_name[row["name"]].more_evals[j]
            ci = None
            if rand and row["kind"] == "method":
                p = paired_difference(mine["losses"], mean_losses([r["losses"] for r in rand]), mine["counts"])
                ci = [p.low, p.high]
            row["more_evals"].append(
                {"eval_loss": mine["loss"], "delta_random": mine["loss"] - mean if rand else None, "random_ci": ci}
            )


def paired(rows: list[dict[str, Any]], trials: list[Any], kinds: dict[str, str]) -> None:
    """Each method's row gains its paired difference, with a 95% bootstrap interval over the held-out
    examples, against the mean of the random picks (`random_ci`) and against `longest` when it ran
    (`delta_longest`, `longest_ci`); None where a trial has no per-example losses (cached by an older
    version) or there is nothing to compare with."""
    from .intervals import mean_losses, paired_difference

    with_losses = {t.name: t for t in trials if t.eval_losses is not None}
    randoms = [t for t in trials if kinds[t.name] == "random"]
    rand = (
        mean_losses([t.eval_losses for t in randoms])
        if randoms and all(t.name in with_losses for t in randoms)
        else None
    )
    longest = with_losses.get("longest")
    for row in rows:
        row["random_ci"] = row["delta_longest"] = row["longest_ci"] = None
        t = with_losses.get(row["name"])
        if t is None or row["kind"] != "method":
            continue
        if rand is not None:
            p = paired_difference(t.eval_losses, rand, t.eval_counts)
            row["random_ci"] = [p.low, p.high]
        if longest is not None and t is not longest:
            p = paired_difference(t.eval_losses, longest.eval_losses, t.eval_counts)
            row["delta_longest"], row["longest_ci"] = p.delta, [p.low, p.high]


def _row(name: str, kind: str, n: int, tokens: int, trained: int, steps: int, loss: float, rand: dict | None,
         full: float | None, select_s: float | None, train_s: float) -> dict[str, Any]:  # fmt: skip
    d_rand = loss - rand["mean"] if rand else None
    sd = rand["sd"] if rand else None
    return {
        "name": name,
        "kind": kind,
        "n": n,
        "tokens": tokens,
        "trained_tokens": trained,
        "steps": steps,
        "eval_loss": loss,
        "delta_random": d_rand,
        "z_random": d_rand / sd if d_rand is not None and sd else None,
        "delta_full": loss - full if full is not None else None,
        "select_seconds": select_s,
        "train_seconds": train_s,
    }
