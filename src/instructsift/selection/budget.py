"""A budget in training tokens: take examples in a ranking's order until they fill it.

At an equal number of examples a method that prefers long answers trains on more tokens than random
picks, so its gain may be only length (Zhao et al., ICML 2024, "Long Is More for Alignment"; Xia et al.,
arXiv 2410.09335). A token budget puts every pick on the same footing: each takes its own best examples
until their trained answer tokens reach the budget.

`TokenBudget` (`select: token_budget`) does it inside a run: the method's selectors rank the rows their
filters keep, and it takes them in that rank order (`Selection.ranked`) with `fill_tokens`, counting the
`trained_tokens` scorer's column (`train.costs`). `select --budget-tokens` and a method's `budget_tokens`
option expand to that scorer, the method ranking every row it keeps, and this selector
(`methods.base.Size.budget_steps`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import ColumnRef, register
from .base import Selection, column, drop_unscored
from .size import Amount


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


@register("select", "token_budget")
@dataclass
class TokenBudget:
    """Keep the rows still kept, in their rank order, until their trained answer tokens fill `tokens`.

    `tokens` is a count, or a share of every input row's tokens in `column` (the `trained_tokens` scorer's).
    The example that crosses the budget is taken only when that leaves the total nearer to it
    (`fill_tokens`: within half an example); the fill stops there. Rows no earlier selector ranked come
    after the ranked ones, in row order. A pick whose rows run out first keeps them all and says so.
    """

    tokens: int | float
    column: ColumnRef = "trained_tokens"

    def __post_init__(self) -> None:
        _ = self.amount  # checked when built

    @property
    def amount(self) -> Amount:
        """Its declared size: `tokens` as an amount of tokens (its errors say "the token budget": the selector
        is reached from a method's `budget_tokens` and from `select --budget-tokens`)."""
        return Amount(self.tokens, "tokens", "the token budget")

    def describe(self) -> str:
        return f"rows in rank order until {self.amount.describe()} by {self.column}"

    def apply(self, table: Any, selection: Selection) -> None:
        values = column(table, self.column)
        drop_unscored(table, selection, [self.column])
        each = np.nan_to_num(values, nan=0.0).astype(np.int64).tolist()
        total = sum(each)
        budget = self.amount.resolve(total)
        order = selection.ranked()
        picked = fill_tokens(order, each, budget)
        filled = sum(each[i] for i in picked)
        rest = order[len(picked) :]
        selection.rank = {i: r for r, i in enumerate(picked, start=1)}
        selection.drop(rest, f"past the budget of {budget:,} tokens", [f"{self.column} = {each[i]}" for i in rest])
        short = " (the ranked rows ran out first)" if len(picked) == len(order) and filled < budget else ""
        share = f" ({100 * budget / total:.1f}%)" if total else ""
        selection.shares.append(
            f"token budget {budget:,} of {total:,} trained answer tokens{share}: filled {filled:,} with {len(picked)} "
            f"rows{short}"
        )
