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
