"""A budget in training tokens: take examples in a ranking's order until they fill it.

At an equal number of examples a method that prefers long answers trains on more tokens than random
picks, so its gain may be only length (Zhao et al., ICML 2024, "Long Is More for Alignment"; Xia et al.,
arXiv 2410.09335). A token budget puts every pick on the same footing: each takes its own best examples
until their trained answer tokens reach the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def fill_tokens(order: Iterable[int], tokens: Sequence[int], budget: int) -> list[int]:
    """The positions of `order`, in that order, whose `tokens` fill `budget`. Examples are taken while
    they fit; the first one that does not fit is taken only when that leaves the total nearer to the budget
    (so the total is within half an example of it), and the fill stops there. An order that runs out first
    gives less than the budget."""
    if budget < 0:
        raise ValueError(f"a token budget is at least 0, got {budget}")
    out: list[int] = []
    total = 0
    for i in order:
        if total >= budget:
            break
        t = tokens[i]
        if total + t > budget:
            if total + t - budget < budget - total:
                out.append(i)
            break
        out.append(i)
        total += t
    return out


def rows_needed(tokens: Sequence[int], budget: int) -> int:
    """The most examples any order can need to fill `budget`: the count of the shortest ones first, plus
    the one that may cross it."""
    total = 0
    for n, t in enumerate(sorted(tokens), start=1):
        total += t
        if total >= budget:
            return n
    return len(tokens)
