"""A seeded uniform sample: the `random` baseline that every selection method must beat.

Xia et al. (arXiv 2410.09335, "Rethinking Data Selection at Scale: Random Selection is Almost All You
Need") and Ivison et al. (arXiv 2503.01807) find that at scale most selection methods come close to a
random pick of the same size; a random pick is the first thing a selection is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import OptionError
from ..registry import register
from .base import Selection
from .size import check_size, count_for, size_text


def random_subset(n: int, size: int, seed: int) -> list[int]:
    """`size` distinct positions of `n` in increasing order, the same for the same seed
    (`numpy.random.default_rng(seed).choice` without replacement)."""
    if not 0 <= size <= n:
        raise OptionError(f"cannot pick {size} of {n} rows")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n, size=size, replace=False))


@register("select", "random")
@dataclass
class RandomSample:
    """Keep `k` (or `ratio`) rows drawn uniformly at random, seeded, among those still kept.

    `of="all"` takes the ratio of every input row, `of="kept"` of the rows still kept. The draw is
    `random_subset` over the kept rows, the same draw as `compare`'s random arms for the same seed. A draw of
    every row (ratio 1) is ranked in the order of `default_rng(seed).permutation`, the order in which
    `compare`'s random arms fill a token budget (so `select --method random --budget-tokens` fills as they do).
    """

    ratio: float | None = None
    k: int | None = None
    of: str = "all"
    seed: int = 0

    def __post_init__(self) -> None:
        check_size(self.ratio, self.k, self.of)

    def describe(self) -> str:
        size = size_text(self.ratio, self.k, self.of)
        return f"{size} at random (seed {self.seed})"

    def apply(self, table: Any, selection: Selection) -> None:
        candidates = selection.kept
        n = min(len(candidates), count_for(self.ratio, self.k, table.num_rows if self.of == "all" else len(candidates)))
        if n == len(candidates):  # every row: ranked as compare's random arms fill a token budget
            drawn = np.random.default_rng(self.seed).permutation(n).tolist()
        else:
            drawn = random_subset(len(candidates), n, self.seed)
        for rank, j in enumerate(drawn, start=1):
            selection.rank[int(candidates[j])] = rank
        picked = np.zeros(len(candidates), dtype=bool)
        picked[drawn] = True
        selection.drop(candidates[~picked], f"not among {n} drawn at random (seed {self.seed})")
