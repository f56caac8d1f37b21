"""InstructMining's whole run (Cao et al., 2023): score a pool's indicators, fine-tune and evaluate each
design subset, fit the rule (`train.instructmining`, also the `instructmining` fit step), rank the pool
by it and search the subset size (`mine`); `ranking` and `with_derived` read a fitted rule over a table.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..selection.instructmining import InstructMiningRule, indicator_values, is_knn, unscored_reason
from ..train.instructmining import DEFAULT_INDICATORS, fit_rule


def ranking(table: Any, rule: InstructMiningRule, log: Callable[[str], None] | None = None,
            embedding: str = "embedding") -> list[int]:  # fmt: skip
    """Table positions by the rule's predicted log loss, best (lowest) first. A row whose prediction is not
    finite (an indicator missing, or +-inf) is left out, and each one is logged with its reason."""
    M = indicator_values(table, rule.indicators_, np.arange(table.num_rows), embedding)
    pred = rule.predict(M)
    bad = np.flatnonzero(~np.isfinite(pred)).tolist()
    if bad:
        shown = "; ".join(f"row {i}: {unscored_reason(rule.indicators_, M[i], pred[i])}" for i in bad[:10])
        (log or print)(f"{len(bad)} rows not ranked (no finite prediction): {shown}{'; ...' if len(bad) > 10 else ''}")
    ok = np.flatnonzero(np.isfinite(pred))
    return ok[np.lexsort((ok, pred[ok]))].tolist()


def with_derived(table: Any, indicators: Sequence[str], embedding: str = "embedding") -> Any:
    """`table` with the derived indicators among `indicators` added as named columns (float64, null where a
    row has no finite value): `ppl` = exp(loss_cond) and `knnK` over all the table's rows with an embedding."""
    import pyarrow as pa

    derived = [n for n in indicators if (n == "ppl" or is_knn(n)) and n not in table.column_names]
    if not derived:
        return table
    M = indicator_values(table, derived, np.arange(table.num_rows), embedding)
    for j, name in enumerate(derived):
        values = [float(v) if np.isfinite(v) else None for v in M[:, j]]
        table = table.append_column(name, pa.array(values, pa.float64()))
    return table


def run_experiments(subsets: Sequence[Sequence[int]], loss_of: Callable[[Sequence[int]], float],
                    log: Callable[[str], None] | None = None) -> list[float]:  # fmt: skip
    """Each subset's eval loss through `loss_of` (a runner caches its fine-tunings, so this resumes)."""
    out = []
    for i, rows in enumerate(subsets):
        loss = float(loss_of(list(rows)))
        if not np.isfinite(loss) or loss <= 0:
            raise ValueError(f"subset {i}: loss_of gave {loss}, not a positive loss")
        out.append(loss)
        if log:
            log(f"subset {i + 1}/{len(subsets)}: {len(rows)} rows, eval loss {loss:.4f}")
    return out


def mine(
    design: str | Path,
    loss_of: Callable[[Sequence[int]], float],
    out: str | Path,
    *,
    indicators: Sequence[str] = DEFAULT_INDICATORS,
    options: dict[str, Any] | None = None,
    low: int = 10,
    high: int | None = None,
    budget: int = 20,
    sweep_points: int = 8,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The whole InstructMining run on a design (`train/design.py`): score the pool's indicators, evaluate
    every subset with `loss_of(pool positions)`, fit the rule, rank the pool by it, search the subset size
    with BlendSearch and sweep it evenly. Writes to `out`: pool.scores.parquet, experiments.json, rule.json,
    search.jsonl (the trials), curve.png and summary.json (returned); pool.scores.parquet has `ppl` and `knnK` as
    named columns when they are indicators. Everything is cached or journaled,
    so a rerun resumes; `options` are the instructmining method's options (reward_model, model, encoder)."""
    from .. import pipeline
    from .. import recipe as recipes
    from ..api import write_scores
    from ..atomic import write_text
    from ..methods.instructmining import Params, scoring_steps
    from .search import as_dict, even_ks, plot_curve, search_size, sweep

    log = log or print
    folder, target = Path(design).resolve().parent, Path(out)
    target.mkdir(parents=True, exist_ok=True)
    spec = json.loads(Path(design).read_text(encoding="utf-8"))
    pool = folder / spec["pool"]
    subsets = [s["rows"] for s in spec["subsets"]]
    scoring = scoring_steps(list(indicators), Params.model_validate(options or {}))
    recipe = recipes.from_dict({"input": str(pool), "cache_dir": str(cache_dir) if cache_dir else None,
                                "steps": scoring})  # fmt: skip
    table = with_derived(pipeline.run(recipe, progress=False, log=log).table, indicators)
    write_scores(table, target / "pool.scores.parquet")  # with ppl and knnK as named columns
    losses = run_experiments(subsets, loss_of, log)
    write_text(target / "experiments.json", json.dumps(
        {"subsets": [{"rows": r, "loss": v} for r, v in zip(subsets, losses, strict=True)]}))  # fmt: skip
    rule = fit_rule(table, subsets, losses, indicators, log=log)
    rule.save(target / "rule.json")
    log(f"rule: {rule.summary()}; R² {rule.rsquared_:.3f}, leave-one-out R² {rule.loo_rsquared_:.3f}")
    order = ranking(table, rule, log)
    high = min(high or len(order), len(order))
    result = search_size(loss_of, order, low=low, high=high, budget=budget, journal=target / "search.jsonl", log=log)
    curve = sweep(loss_of, order, even_ks(low, high, sweep_points), journal=target / "search.jsonl", log=log)
    trials = result.trials + [t for t in curve if t not in result.trials]
    best = min(trials, key=lambda t: (t.loss, t.k))
    plot_curve(trials, target / "curve.png", best_k=best.k)
    summary = {"rule": rule.to_dict(), "search": as_dict(result), "best_k": best.k, "best_loss": best.loss,
               "pool": len(order), "subsets": len(subsets)}  # fmt: skip
    write_text(target / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


__all__ = ["mine", "ranking", "run_experiments", "with_derived"]
