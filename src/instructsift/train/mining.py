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
from ..registry import StrictModel, register
from ..selection.instructmining import InstructMiningRule, indicator_values

DEFAULT_INDICATORS = ("reward", "output_tokens", "input_tokens", "mtld", "ppl", "knn6")


def subset_means(
    table: Any, subsets: Sequence[Sequence[int]], indicators: Sequence[str], embedding: str = "embedding"
) -> np.ndarray:
    """(len(subsets), len(indicators)) mean indicator values of each subset of table rows."""
    rows = np.arange(table.num_rows)
    M = indicator_values(table, indicators, rows, embedding)
    out = np.empty((len(subsets), len(indicators)))
    for s, members in enumerate(subsets):
        idx = np.asarray(members, dtype=np.int64)
        if len(idx) == 0 or idx.min() < 0 or idx.max() >= table.num_rows:
            raise OptionError(f"subset {s}: rows must be positions 0..{table.num_rows - 1} (and not empty)")
        part = M[idx]
        empty = [indicators[j] for j in np.flatnonzero(np.isnan(part).all(axis=0))]
        if empty:
            raise OptionError(f"subset {s}: no row has a value of {', '.join(empty)}")
        out[s] = np.nanmean(part, axis=0)
    return out


def fit_rule(
    table: Any,
    subsets: Sequence[Sequence[int]],
    losses: Sequence[float],
    indicators: Sequence[str] = DEFAULT_INDICATORS,
    embedding: str = "embedding",
) -> InstructMiningRule:
    """Fit the rule on the subsets' mean indicators (columns of `table`) and their eval losses."""
    names = [n for n in indicators if n in table.column_names or n == "ppl" or n.startswith("knn")]
    missing = [n for n in indicators if n not in names]
    if missing:
        raise OptionError(
            f"the score table has no indicator {', '.join(missing)} (columns: {', '.join(table.column_names)})"
        )
    means = subset_means(table, subsets, names, embedding)
    rule = InstructMiningRule(names).fit(means, losses)
    rule.note_ = f"fitted on {len(subsets)} subsets; indicators: {', '.join(names)}"
    return rule


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
    experiments: str
    scores: str
    indicators: list[str] = list(DEFAULT_INDICATORS)
    embedding: str = "embedding"


@register("fit", "instructmining", params=FitParams)
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
    out = (Path(cache_dir) if cache_dir else cache_root()) / "artifacts" / f"instructmining-{h.hexdigest()[:16]}.json"
    if out.exists():
        log(f"rule: cached ({out})")
        return str(out)
    rule = fit_rule(table, subsets, losses, params.indicators, params.embedding)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(rule.to_dict(), indent=2) + "\n")
    log(f"rule: {rule.summary()}; R² {rule.rsquared_:.3f}, leave-one-out R² {rule.loo_rsquared_:.3f} ({out})")
    return str(out)


__all__ = [
    "DEFAULT_INDICATORS",
    "fit_instructmining",
    "fit_rule",
    "read_experiments",
    "run_experiments",
    "subset_means",
]
