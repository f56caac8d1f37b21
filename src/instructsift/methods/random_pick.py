"""A uniform random pick, seeded: the baseline every selection is compared against.

Xia et al., arXiv 2410.09335, "Rethinking Data Selection at Scale: Random Selection is Almost All You
Need": at OpenHermes / WildChat scale nearly every self-scoring method comes close to a random pick of
the same size. No scorer runs; `--seed` fixes the draw (`numpy.random.default_rng(seed)`, the same draw
as `compare`'s random arm of that seed); `--ratio` is a share of all rows.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import method, step
from .base import Size


class Params(Size):
    seed: int = Field(0, description="the draw's seed")


@method(
    name="random",
    paper="Xia et al., arXiv 2410.09335, Random Selection is Almost All You Need",
    summary="a seeded uniform random pick, no scores; the ratio is of all rows",
    defaults={"seed": 0},
)
def steps(p: Params) -> list[dict[str, Any]]:
    return [step("select", "random", ratio=p.ratio, k=p.top, seed=p.seed, of="all")]
