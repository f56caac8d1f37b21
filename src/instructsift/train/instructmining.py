"""InstructMining's rule, fitted from experiments: subsets of a scored pool and each subset's eval loss.

    table  = the pool's score table (`instructsift score pool.json --method instructmining ...`)
    losses = each design subset's eval loss (`experiments.mining.run_experiments`: fine-tune, evaluate)
    rule   = fit_rule(table, subsets, losses, indicators)     # InstructMiningRule, .save("fitted.json")

An indicator's subset value is its mean over the subset's rows (rows without the value are left out of
that mean; a subset with none is an error). KNN indicators are computed once over the whole pool.

The `instructmining` fit step does the same inside a recipe: `experiments` is a JSON file
(`{"subsets": [{"rows": [...], "loss": 1.23}, ...]}`: rows are positions in the recipe's input) and the
indicators come from a score table (`scores`) of that input; its product is the rule's JSON, which a
later `instructmining` selector names as `rule: "@NAME"`. The fit reads files and fits a regression; it
runs no pipeline, so it sits here, below the recipes and pipelines that name it (`experiments.mining`
runs the whole loop: score the pool, run the experiments, fit, search the subset size).
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
from ..scoring.table import read_matching
from ..selection.instructmining import InstructMiningRule, indicator_values
from . import under_cache_dir

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
    from ..atomic import write_text
    from ..models import cache_root

    log = log or (lambda _m: None)
    table = read_matching(params.scores, dataset)
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


__all__ = ["DEFAULT_INDICATORS", "fit_instructmining", "fit_rule", "read_experiments", "subset_means",
           "subset_means_and_missing"]  # fmt: skip
