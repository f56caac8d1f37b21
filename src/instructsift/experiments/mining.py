"""Fitting InstructMining's rule from experiments: subsets of a scored pool and each subset's eval loss.

    table  = the pool's score table (`instructsift score pool.json --method instructmining ...`)
    losses = [loss_of(rows) for rows in design subsets]       # a runner: fine-tune on rows, eval loss
    rule   = fit_rule(table, subsets, losses, indicators)     # InstructMiningRule, .save("fitted.json")

An indicator's subset value is its mean over the subset's rows (rows without the value are left out of
that mean; a subset with none is an error). KNN indicators are computed once over the whole pool.

The `instructmining` fit step does the same inside a recipe: `experiments` is a JSON file
(`{"subsets": [{"rows": [...], "loss": 1.23}, ...]}`: rows are positions in the recipe's input) and the
indicators come from a score table (`scores`) of that input; its product is the rule's JSON, which a
later `instructmining` selector names as `rule: "@NAME"`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import OptionError
from ..registry import FilePath, StrictModel, register
from ..selection.instructmining import InstructMiningRule, indicator_values, is_knn, unscored_reason
from ..train import under_cache_dir

DEFAULT_INDICATORS = ("reward", "output_tokens", "input_tokens", "mtld", "ppl", "knn6")


def subset_means_and_missing(
    table: Any,
    subsets: Sequence[Sequence[int]],
    indicators: Sequence[str],
    embedding: str = "embedding",
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """The subset means and, per subset (by index) with any, how many of its rows lack each indicator (no
    value, or not finite) and so are left out of that indicator's mean."""
    rows = np.arange(table.num_rows)
    M = indicator_values(table, indicators, rows, embedding)
    out = np.empty((len(subsets), len(indicators)))
    missing: dict[str, dict[str, int]] = {}
    for s, members in enumerate(subsets):
        idx = np.asarray(members, dtype=np.int64)
        if len(idx) == 0 or idx.min() < 0 or idx.max() >= table.num_rows:
            raise OptionError(f"subset {s}: rows must be positions 0..{table.num_rows - 1} (and not empty)")
        part = M[idx]
        ok = np.isfinite(part)
        empty = [indicators[j] for j in np.flatnonzero(~ok.any(axis=0))]
        if empty:
            raise OptionError(f"subset {s}: no row has a finite value of {', '.join(empty)}")
        out[s] = np.where(ok, part, 0.0).sum(axis=0) / ok.sum(axis=0)
        lacking = {indicators[j]: int(n) for j, n in enumerate((~ok).sum(axis=0)) if n}
        if lacking:
            missing[str(s)] = lacking
            if log:
                counts = ", ".join(f"{name} {n}" for name, n in lacking.items())
                log(f"subset {s}: rows without a value, left out of its mean ({len(idx)} rows): {counts}")
    return out, missing


def subset_means(*args: Any, **kwargs: Any) -> np.ndarray:
    """(len(subsets), len(indicators)) mean indicator values of each subset of table rows; rows without a
    finite value are left out of that mean, and each subset that has some is logged with their count (the
    arguments: `subset_means_and_missing`'s)."""
    return subset_means_and_missing(*args, **kwargs)[0]


def fit_rule(
    table: Any,
    subsets: Sequence[Sequence[int]],
    losses: Sequence[float],
    indicators: Sequence[str] = DEFAULT_INDICATORS,
    embedding: str = "embedding",
    log: Callable[[str], None] | None = None,
) -> InstructMiningRule:
    """Fit the rule on the subsets' mean indicators (columns of `table`) and their eval losses; the rows each
    subset lacks per indicator are logged and kept in the rule's `missing_`."""
    names = [n for n in indicators if n in table.column_names or n == "ppl" or n.startswith("knn")]
    missing = [n for n in indicators if n not in names]
    if missing:
        raise OptionError(
            f"the score table has no indicator {', '.join(missing)} (columns: {', '.join(table.column_names)})"
        )
    means, missing = subset_means_and_missing(table, subsets, names, embedding, log)
    rule = InstructMiningRule(names).fit(means, losses)
    rule.note_ = f"fitted on {len(subsets)} subsets; indicators: {', '.join(names)}"
    rule.missing_ = missing
    return rule


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


def read_experiments(path: str | Path) -> tuple[list[list[int]], list[float]]:
    """(subsets, losses) from an experiments JSON file; an error names the file and the subset."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        items = data["subsets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OptionError(
            f"{path}: not an experiments file ({{'subsets': [{{'rows': [...], 'loss': x}}]}}): {e}"
        ) from None
    subsets, losses = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "rows" not in item or item.get("loss") is None:
            raise OptionError(f"{path}: subsets[{i}] needs rows and loss")
        subsets.append([int(r) for r in item["rows"]])
        losses.append(float(item["loss"]))
    return subsets, losses


class FitParams(StrictModel):
    experiments: FilePath
    scores: FilePath
    indicators: list[str] = list(DEFAULT_INDICATORS)
    embedding: str = "embedding"


@register("fit", "instructmining", params=FitParams)
@under_cache_dir
def fit_instructmining(
    dataset: Any, params: Any, *, cache_dir: Any = None, progress: bool = True, log: Callable | None = None
) -> str:
    """Fit InstructMining's rule from `experiments` (subsets of the input with eval losses) and the input's
    score table `scores`; returns the rule's JSON file (cached by its inputs)."""
    from ..api import read_scores
    from ..atomic import write_text
    from ..models import cache_root

    log = log or (lambda _m: None)
    table = read_scores(params.scores, dataset)
    subsets, losses = read_experiments(params.experiments)
    at = {r: i for i, r in enumerate(table.column("row").to_pylist())}  # input row -> table position
    for i, rows in enumerate(subsets):
        gone = [r for r in rows if r not in at]
        if gone:
            raise OptionError(f"{params.experiments}: subsets[{i}] names input rows not in this run: {gone[:5]}")
        subsets[i] = [at[r] for r in rows]
    h = hashlib.sha256(Path(params.experiments).read_bytes())
    h.update(Path(params.scores).read_bytes())
    h.update(json.dumps([params.indicators, params.embedding]).encode())
    out = cache_root() / "artifacts" / f"instructmining-{h.hexdigest()[:16]}.json"
    if out.exists():
        log(f"rule: cached ({out})")
        return str(out)
    rule = fit_rule(table, subsets, losses, params.indicators, params.embedding, log)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(rule.to_dict(), indent=2) + "\n")
    log(f"rule: {rule.summary()}; R² {rule.rsquared_:.3f}, leave-one-out R² {rule.loo_rsquared_:.3f} ({out})")
    return str(out)


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


__all__ = ["DEFAULT_INDICATORS", "fit_instructmining", "fit_rule", "mine", "ranking", "read_experiments",
           "run_experiments", "subset_means", "subset_means_and_missing", "with_derived"]  # fmt: skip
