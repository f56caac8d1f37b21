"""How many rows a sized selector keeps: a count `k`, or a ratio of `n` rows under one rounding rule."""

from __future__ import annotations

import math
from typing import Any

from ..data.errors import OptionError


def share(ratio: float, n: int) -> int:
    """How many rows a ratio of `n` rows is: the one rounding rule for every ratio a user gives (a
    selector's `ratio`, `compare --budget 0.05`): half up, so 0.05 of 50 rows is 3 (Python's `round`
    would give 2), and at least 1 when n > 0."""
    return min(n, max(1 if n else 0, math.floor(ratio * n + 0.5)))


def count_for(ratio: float | None, k: int | None, n: int) -> int:
    """How many to keep: `k`, or `share(ratio, n)`."""
    if (ratio is None) == (k is None):
        raise OptionError("give exactly one of ratio or k")
    if k is not None:
        if k < 0:
            raise OptionError(f"top k must be >= 0, got {k}")
        return min(k, n)
    if not 0 < ratio <= 1:
        raise OptionError(f"ratio must be in (0, 1], got {ratio}")
    return share(ratio, n)


def check_size(selector: Any, *, optional: bool = False) -> None:
    """A sized selector's options (its `ratio`, `k` and `of`), checked when it is built: `of` is kept or all,
    and exactly one of ratio or k is given (or neither, where the size is `optional`)."""
    ratio, k, of = selector.ratio, selector.k, selector.of
    if of not in ("kept", "all"):
        raise OptionError(f"of must be 'kept' or 'all', got {of!r}")
    if not optional or ratio is not None or k is not None:
        count_for(ratio, k, 0)


def size_text(selector: Any) -> str:
    """A sized selector's size as its `describe()` says it: `8`, or `0.1 of kept`."""
    return f"{selector.k}" if selector.k is not None else f"{selector.ratio:g} of {selector.of}"


def parse_budget(text: str, option: str = "--budget") -> int | float | list[int | float]:
    """`450` -> 450 (examples or tokens); `0.05` -> 5% of the data set's; `0.05,0.1` -> a curve."""
    if "," in text:
        return [parse_budget(part.strip(), option) for part in text.split(",")]  # type: ignore[misc]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise OptionError(
            f"{option} {text!r}: a count (450), a ratio of the data set (0.05), or a list (0.05,0.1)"
        ) from None


def budget_size(budget: int | float, n: int) -> int:
    """Rows a budget picks: a count, or a ratio of `n` (rounded as every ratio is: `share`)."""
    if isinstance(budget, float):
        return max(1, share(budget, n))
    if budget > n:
        raise OptionError(f"{{budget}} is more than the {n} examples in the data set", budget=budget)
    return budget
