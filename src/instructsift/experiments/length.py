"""Is a method mostly a length filter? Spearman's ρ between its score and answer tokens over the pool,
and its pick's mean answer tokens against the pool's.

Zhao et al. (ICML 2024, "Long Is More for Alignment") show that the longest answers are a tough baseline,
and studies at scale (arXiv 2410.09335) find length explains much of what selection methods gain. A method
whose score ranks rows nearly as their answer length does (ρ above `LENGTH_FILTER`) picks, on this data,
what `longest` would: it is called a length filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

LENGTH_FILTER = 0.8  # ρ above this: mostly a length filter


def ranking_of(selectors: Sequence[Any]) -> tuple[str, bool] | None:
    """The score column the last ranking selector ranks by, and whether highest first (None: no selector
    ranks by a score, e.g. k-center or a random pick)."""
    for selector in reversed(selectors):
        ranking = getattr(selector, "ranking", None)
        found = ranking() if ranking else None
        if found:
            return found
    return None


def length_diagnostic(table: Any, selectors: Sequence[Any], tokens: Sequence[int], picked: Sequence[int]) -> dict:
    """ρ between the method's score (sign-adjusted so that higher = ranked first) and `tokens` over the rows
    with a score; the mean tokens of `picked` and of the pool; and whether ρ calls it a length filter."""
    from scipy.stats import spearmanr

    tokens = np.asarray(tokens, dtype=np.float64)
    out: dict[str, Any] = {
        "score": None,
        "rho": None,
        "rows": 0,
        "pick_mean_tokens": float(tokens[list(picked)].mean()) if len(picked) else None,
        "pool_mean_tokens": float(tokens.mean()) if len(tokens) else None,
        "length_filter": None,
    }
    ranking = ranking_of(selectors)
    if ranking is None or ranking[0] not in table.column_names:
        return out
    column, descending = ranking
    score = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    ok = ~np.isnan(score)
    out.update(score=column, rows=int(ok.sum()))
    if ok.sum() >= 3 and np.ptp(score[ok]) > 0 and np.ptp(tokens[ok]) > 0:
        rho = float(spearmanr(score[ok] if descending else -score[ok], tokens[ok]).statistic)
        out.update(rho=rho, length_filter=rho > LENGTH_FILTER)
    return out


def of_run(run: Any, tokens: Sequence[int], picked: Sequence[int] | None = None) -> dict:
    """The diagnostic of a pipeline run (`pipeline.RunResult`: `select`, or one arm of `compare`): the
    score its selectors rank by, against `tokens`; `picked` defaults to the rows the run kept."""
    from .. import registry

    built = [registry.get("select", st.name).build(st.options) for st in run.recipe.steps if st.kind == "select"]
    kept = run.picked.selection.kept.tolist() if picked is None else picked
    return length_diagnostic(run.table, built, tokens, kept)


# The size options (`methods.base.Size`) that say how trained tokens are counted, by the names
# `trained_tokens` takes them under.
COUNTING = {"base": "base", "train_max_length": "max_length", "train_template": "template"}


def counting_options(options: dict[str, Any], with_scores: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A method's options, less those that say how the length diagnostic of `select --with-scores` counts
    trained tokens when no token budget takes them (`trained_tokens`' keyword arguments)."""
    if options.get("budget_tokens") is not None or not any(k in options for k in COUNTING):
        return options, {}
    if not with_scores:
        from ..errors import UsageError

        raise UsageError(
            "--base, --train-max-length and --train-template count trained tokens: give --budget-tokens or --with-scores"
        )
    return {k: v for k, v in options.items() if k not in COUNTING}, {
        COUNTING[k]: v for k, v in options.items() if k in COUNTING
    }


def trained_tokens(
    run: Any, base: str | None = None, max_length: int | None = None, template: str | None = None
) -> tuple[list[int], str]:
    """Each pool row's trained answer tokens, as `compare` counts them, and what counted them: the run's
    own `trained_tokens` column (a token-budget run), else the `trained_tokens` scorer for fine-tuning
    `base` at `max_length` with `template`, each unset one the scorer's own default (cached like every score)."""
    import numpy as np

    from ..train.costs import TrainedTokens

    if "trained_tokens" in run.table.column_names and (base, max_length, template) == (None, None, None):
        tokens = np.nan_to_num(run.table.column("trained_tokens").to_numpy(zero_copy_only=False).astype(float))
        step = next(st for st in run.recipe.steps if st.kind == "score" and st.name == "trained_tokens")
        counted = TrainedTokens(**step.options)  # the run's own counter, its defaults filled in
        return tokens.astype(np.int64).tolist(), counted_by(counted.model, counted.max_length, counted.template)
    from ..engine.local import score

    asked = {"model": base, "max_length": max_length, "template": template}
    scorer = TrainedTokens(**{k: v for k, v in asked.items() if v is not None})
    s = run.recipe.settings
    table = score(run.picked.dataset, [scorer], cache_dir=run.recipe.path("cache_dir"), use_cache=s.use_cache,
                  progress=False)  # fmt: skip
    return table.column("trained_tokens").to_pylist(), counted_by(scorer.model, scorer.max_length, scorer.template)


def counted_by(base: str, max_length: int, template: str) -> str:
    """What counted the tokens, for the summary line."""
    return f"trained answer tokens of {base} at max length {max_length}" + (
        f", {template} template" if template != "alpaca" else ""
    )


def summary_line(d: dict, counted: str) -> str:
    """The diagnostic in one line, for `select --with-scores`' summary."""
    means = (
        f"the pick's mean {d['pick_mean_tokens']:.1f} vs the pool's {d['pool_mean_tokens']:.1f}"
        if d["pick_mean_tokens"] is not None
        else f"the pool's mean {d['pool_mean_tokens']:.1f}"
    )
    if d["rho"] is None:
        why = f"{d['score']} does not vary" if d["score"] else "the method ranks by no score"
        return f"length ({counted}): no ρ ({why}); {means}"
    verdict = f": mostly a length filter on this data (ρ > {LENGTH_FILTER})" if d["length_filter"] else ""
    return (
        f"length ({counted}): Spearman ρ = {d['rho']:.3f} between {d['score']} and answer tokens over "
        f"{d['rows']} rows; {means}{verdict}"
    )
