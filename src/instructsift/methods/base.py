"""A method is a paper's recipe: which scorers to run and which selectors decide, with its defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..data.errors import OptionError


@dataclass(frozen=True)
class Method:
    name: str
    paper: str
    summary: str
    defaults: dict[str, Any]
    make_scorers: Callable[..., list[Any]] = field(repr=False)
    make_selectors: Callable[..., list[Any]] = field(repr=False)
    # Optional phases before scoring (e.g. fine-tuning a pre-experienced model): takes the data set and
    # the options, returns the options to score with.
    prepare: Callable[..., dict[str, Any]] | None = field(default=None, repr=False)
    needs_size: bool = True  # False for methods that decide by a threshold alone

    def scorers(self, **options: Any) -> list[Any]:
        """The method's scorers. `options` are every CLI/API option that is set (None ones are removed);
        a method's factory takes the ones it uses and ignores the rest."""
        return self.make_scorers(**{k: v for k, v in options.items() if v is not None})

    def selectors(self, *, ratio: float | None = None, top: int | None = None, **options: Any) -> list[Any]:
        if self.needs_size and (ratio is None) == (top is None):
            raise OptionError(f"method {self.name!r} needs exactly one of --ratio or --top")
        if ratio is not None and top is not None:
            raise OptionError("give --ratio or --top, not both")
        return self.make_selectors(ratio=ratio, k=top, **{k: v for k, v in options.items() if v is not None})


def pick(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The options a scorer takes, out of everything the user set."""
    return {k: v for k, v in options.items() if k in names}
