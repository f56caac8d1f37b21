"""Training primitives and fit steps: supervised fine-tuning (LoRA or full), packing, answer-loss
evaluation, trained-token costs, the SCAR ranker (and its answers' synthesis). What runs them many times is
in `experiments/`. Modules import torch lazily."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def under_cache_dir(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a fit step with its `cache_dir` keyword (when given) as the cache root, so that every cache it
    touches (the models it converts, fingerprints, its artifact) follows the one folder it was passed."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from ..models import use_cache_root

        with use_cache_root(kwargs.get("cache_dir")):
            return fn(*args, **kwargs)

    return wrapper
