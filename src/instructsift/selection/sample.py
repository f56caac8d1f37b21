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
from .size import Sized


def random_order(n: int, seed: int) -> list[int]:
    """The positions of `n` rows in a seeded random order (`numpy.random.default_rng(seed).permutation(n)`):
    every random pick of seed `seed` is a prefix of it (k rows for a count, rows until a token budget fills)."""
    return np.random.default_rng(seed).permutation(n).tolist()


def random_subset(n: int, size: int, seed: int) -> list[int]:
    """`size` distinct positions of `n` in increasing order, the same for the same seed: the first `size` of
    `random_order(n, seed)`."""
    if not 0 <= size <= n:
        raise OptionError(f"cannot pick {size} of {n} rows")
    return sorted(random_order(n, seed)[:size])


@register("select", "random")
@dataclass
class RandomSample(Sized):
    """Keep `k` (or `ratio`) rows drawn uniformly at random, seeded, among those still kept.

    `of="all"` takes the ratio of every input row, `of="kept"` of the rows still kept. The draw is the first
    rows of `random_order` over the kept rows, ranked in that order: the same draw as `compare`'s random arm
    of that seed, for a count and, filled in rank order, for a token budget.
    """

    ratio: float | None = None
    k: int | None = None
    of: str = "all"
    seed: int = 0

    def __post_init__(self) -> None:
        _ = self.amount  # checked when built

    def describe(self) -> str:
        return f"{self.amount.describe(self.of)} at random (seed {self.seed})"

    def apply(self, table: Any, selection: Selection) -> None:
        candidates = selection.kept
        n = min(
            len(candidates), self.amount.resolve(table.num_rows if self.of == "all" else len(candidates), clamp=True)
        )
        drawn = random_order(len(candidates), self.seed)[:n]
        for rank, j in enumerate(drawn, start=1):
            selection.rank[int(candidates[j])] = rank
        picked = np.zeros(len(candidates), dtype=bool)
        picked[drawn] = True
        selection.drop(candidates[~picked], f"not among {n} drawn at random (seed {self.seed})")
