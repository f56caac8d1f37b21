"""Paired differences in held-out loss between two tuned models, with a bootstrap interval over the
held-out examples.

Every tuned model of a comparison answers the same held-out examples, so two models are compared example
by example (a paired design). The difference is the token-weighted one that eval loss itself is:
Δ = Σᵢ nᵢ (aᵢ − bᵢ) / Σᵢ nᵢ, with aᵢ, bᵢ the models' mean answer loss on example i and nᵢ its answer tokens
(so Δ is exactly eval_loss(a) − eval_loss(b)). The interval resamples examples with replacement
(`scipy.stats.bootstrap`, paired, percentile method, seeded): it says how much Δ could move with another
held-out set of the same kind, which the spread over random seeds does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Paired:
    """Δ = eval loss of a − of b, its bootstrap interval [low, high], and the examples it is over."""

    delta: float
    low: float
    high: float
    examples: int

    @property
    def includes_zero(self) -> bool:
        return self.low <= 0 <= self.high

    def as_dict(self) -> dict[str, float | int]:
        return {"delta": self.delta, "low": self.low, "high": self.high, "examples": self.examples}


def paired_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    counts: Sequence[int],
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Paired:
    """Δ of per-example losses `a` and `b` (None: not scored) weighted by `counts`, with a percentile
    bootstrap interval over the examples scored in both."""
    from scipy.stats import bootstrap

    if not len(a) == len(b) == len(counts):
        raise ValueError(f"per-example losses of different held-out sets ({len(a)}, {len(b)}, {len(counts)})")
    both = [i for i in range(len(a)) if a[i] is not None and b[i] is not None and counts[i] > 0]
    if not both:
        raise ValueError("no held-out example was scored by both models")
    d = np.array([a[i] - b[i] for i in both], dtype=np.float64)
    w = np.array([counts[i] for i in both], dtype=np.float64)
    delta = float((d * w).sum() / w.sum())
    if len(both) == 1:
        return Paired(delta, delta, delta, 1)

    def weighted(d: np.ndarray, w: np.ndarray, axis: int = -1) -> np.ndarray:
        return (d * w).sum(axis=axis) / w.sum(axis=axis)

    res = bootstrap(
        (d, w),
        weighted,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Paired(delta, float(ci.low), float(ci.high), len(both))


def mean_losses(runs: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Per example, the mean loss over several models (None where any of them skipped it)."""
    return [None if any(x is None for x in xs) else float(np.mean(xs)) for xs in zip(*runs, strict=True)]
