"""A selection's size, one type for all its spellings: `Amount`, rows or tokens, a count or a share.

A selector's `ratio` / `k` (its declared `amount`: `Sized`), a method's `ratio` / `top` / `budget_tokens`,
the `token_budget` selector's `tokens` and `compare`'s `budget` / `budget_tokens` are each an `Amount`:
parsed by one `parse`, checked by one validation (whose errors name the option that gave it), resolved to a
number by one rounding rule (`share`), said by one `describe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..data.errors import OptionError, Placeholder

Unit = Literal["rows", "tokens"]
TOTALS = {"rows": "examples", "tokens": "trained answer tokens"}  # what a total of each unit is, in words
EXAMPLE = {"rows": "450", "tokens": "200000"}  # a count, as an error shows one


def share(ratio: float, n: int) -> int:
    """How many of `n` a share is: the one rounding rule for every share a user gives (a selector's
    `ratio`, `compare --budget 0.05`, a token budget's share): half up, so 0.05 of 50 rows is 3 (Python's
    `round` would give 2), and at least 1 when n > 0."""
    return min(n, max(1 if n else 0, math.floor(ratio * n + 0.5)))


def number(text: str | int | float, name: str = "budget") -> int | float:
    """A count or a share from the command line or a recipe: `450` -> 450, `0.05` -> 0.05 (not checked)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        for kind in (int, float):
            try:
                return kind(text.strip())
            except ValueError:
                pass
    raise _error(name, repr(text), f"is not a number: a count ({EXAMPLE['rows']}) or a share of the data set (0.05)")


def _error(name: str, value: str, text: str, *others: str) -> OptionError:
    """The error about option `name` given `value` (`ratio=5`, `--ratio 5`): `name` is a field name, spelled
    by each front end, or words ("the token budget"); `text` says what is wrong (no user text: that goes in
    `value`), naming the options `others` as `{top}`."""
    if not name.isidentifier():
        return OptionError(f"{name} {value} {text}")
    return OptionError("{" + name + "} " + text, *others, **{name: Placeholder(value)})


@dataclass(frozen=True)
class Amount:
    """How much a selection takes: `value` rows or tokens (`unit`), a count (an int, at least `least`: 1, or
    0 for a selector's `k`) or a share of the total (a float in (0, 1]). `name` is the option that gave it,
    named by its errors; `count` is the option for a count where that is another one (`top` beside `ratio`)."""

    value: int | float
    unit: Unit = "rows"
    name: str = field(default="budget", compare=False)
    least: int = field(default=1, compare=False)
    count: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        v, name = self.value, self.name
        if self.unit not in TOTALS:
            raise ValueError(f"an amount is of rows or tokens, not {self.unit!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _error(name, repr(v), f"is not a count of {self.unit} or a share in (0, 1]")
        if isinstance(v, float) and not 0 < v <= 1:
            hint = (
                f"use {{{self.count}}} for a count"
                if self.count
                else f"a count is a whole number: {EXAMPLE[self.unit]}"
            )
            others = (self.count,) if self.count else ()
            raise _error(name, f"{v:g}", f"is not a share between 0 and 1 (0.05 for 5%); {hint}", *others)
        if isinstance(v, int) and v < self.least:
            raise _error(name, f"{v:,}", f"is too small: a count of {self.unit} is at least {self.least}")

    @classmethod
    def parse(cls, text: str | int | float, unit: Unit = "rows", name: str = "budget", **kw: Any) -> Amount:
        """An amount from text or a number: `450` a count, `0.05` a share."""
        return cls(number(text, name), unit, name, **kw)

    @property
    def is_share(self) -> bool:
        return isinstance(self.value, float)

    def resolve(self, total: int, *, clamp: bool = False) -> int:
        """The count this amount is of `total` rows or tokens: a share by `share`'s rounding; a count more than
        `total` is an error, or `total` with `clamp` (a selector keeps what is left)."""
        if self.is_share:
            return share(self.value, total)
        if self.value > total and not clamp:
            raise _error(
                self.name, f"{self.value:,}", f"is more than the {total:,} {TOTALS[self.unit]} of the data set"
            )
        return min(int(self.value), total)

    def describe(self, of: str = "all") -> str:
        """`8`, `0.1 of kept` (a share of `of`); tokens: `200,000 tokens`, `0.05 of all tokens`."""
        size = f"{self.value:,}" if not self.is_share else f"{self.value:g} of {of}"
        return size + (" tokens" if self.unit == "tokens" else "")


def one_of(given: dict[str, Any], *, optional: bool = False) -> Any:
    """The one value given (not None) among named options (`{"ratio": a, "top": None}`), or None where
    `optional`; two given, or none, is an error naming them."""
    named = [name for name, v in given.items() if v is not None]
    if len(named) > 1:
        raise OptionError(f"needs exactly one of {{{named[0]}}} or {{{named[1]}}}, not both", *named[:2])
    if not named and not optional:
        names = list(given)  # the first two are the usual ones: `ratio or top (or budget_tokens)`
        rest = "".join(f" (or {{{n}}})" for n in names[2:])
        raise OptionError(f"needs exactly one of {{{names[0]}}} or {{{names[1]}}}{rest}", *names)
    return next((v for v in given.values() if v is not None), None)


def ratio_of(ratio: float | None, count: str | None = "k") -> Amount | None:
    """A `ratio` option as a share of rows (`1` is the share 1.0); `count`: the option for a count."""
    if isinstance(ratio, int) and not isinstance(ratio, bool):
        ratio = float(ratio)
    return None if ratio is None else Amount(ratio, "rows", "ratio", count=count)


def count_of(k: int | None, name: str = "k") -> Amount | None:
    """A count option (`k`, a method's `top`) as a count of rows, 0 included."""
    return None if k is None else Amount(k, "rows", name, least=0)


def rows(ratio: float | None, k: int | None, *, count: str = "k", optional: bool = False) -> Amount | None:
    """A size in rows from a share option `ratio` and a count option (`k`, a method's `top`): exactly one
    of them (or neither, where `optional`)."""
    return one_of({"ratio": ratio_of(ratio, count), count: count_of(k, count)}, optional=optional)


def size_of(selector: Any, *, optional: bool = False) -> Amount | None:
    """A sized selector's size from its `ratio`, `k` and `of` (kept or all), checked: exactly one of ratio or
    k (or neither, where the size is `optional`)."""
    if getattr(selector, "of", "kept") not in ("kept", "all"):
        raise OptionError(f"of must be 'kept' or 'all', got {selector.of!r}")
    return rows(selector.ratio, selector.k, optional=optional)


class Sized:
    """A selector sized by its `ratio` or `k` (a share of the rows still kept, or of all with `of="all"`). It
    declares its size as `amount`, which whoever needs the size reads (`pipeline` warns from the last sized
    step's count); a selector with another kind of size (`token_budget`'s tokens, `stratified`'s total)
    declares its own `amount`. `size_optional`: it may have no size (it keeps every row it ranks)."""

    size_optional: ClassVar[bool] = False

    @property
    def amount(self) -> Amount | None:
        """This selector's size: an `Amount` of rows, checked (None: no size, where `size_optional`)."""
        return size_of(self, optional=self.size_optional)


def parse_budget(text: str, name: str = "budget", unit: Unit = "rows") -> int | float | list[int | float]:
    """`compare`'s budget: `450` (examples or tokens), `0.05` (a share of the data set's), `0.05,0.1` (a curve)."""
    values = [Amount.parse(part, unit, name).value for part in text.split(",")]
    return values if "," in text else values[0]
