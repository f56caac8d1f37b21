"""A method is a paper's recipe: which scorers to run and which selectors decide, with its defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Method:
    name: str
    paper: str
    summary: str
    defaults: dict[str, Any]
    make_scorers: Callable[..., list[Any]] = field(repr=False)
    make_selectors: Callable[..., list[Any]] = field(repr=False)

    def scorers(self, **options: Any) -> list[Any]:
        """The method's scorers; `options` (model, template, dtype, ...) override its defaults."""
        return self.make_scorers(**{k: v for k, v in options.items() if v is not None})

    def selectors(self, *, ratio: float | None = None, top: int | None = None) -> list[Any]:
        if (ratio is None) == (top is None):
            raise ValueError(f"method {self.name!r} needs exactly one of --ratio or --top")
        return self.make_selectors(ratio=ratio, k=top)
