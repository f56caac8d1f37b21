"""What every scorer provides. Scorers look at examples and add named columns; they never decide.

The engine caches each scorer's results by (example content hash, `cache_key()`), so a scorer must
put into its key everything that changes its numbers (model fingerprint, dtype, template, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..data.example import Example


class Scorer(Protocol):
    name: str  # also the cache folder's prefix
    # Every column the scorer writes, each mapped to the column that says why its value is missing; None
    # where a null is a value (no language to identify) or the column is bookkeeping (a reason column,
    # token counts). A class-level dict; a scorer whose column names follow its options (`embed`'s
    # `column`, `unieval`'s dimensions) sets it per instance. Accounting (what is unscored), selection
    # (the reason a row without a score is dropped) and the engines read it, never a name pattern.
    columns: dict[str, str | None]

    @property
    def schema(self) -> Any:
        """A pyarrow schema of the columns this scorer adds (names unique across scorers)."""

    def cache_key(self) -> str:
        """A short hash of the configuration; loading a model to fingerprint it is fine."""

    def describe(self) -> str:
        """One line for the log: model, dtype, device, template."""

    def score(
        self,
        examples: Sequence[Example],
        skip: frozenset[str],
        advance: Callable[[float], None] | None = None,
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Yield lists of (content_hash, {column: value}) for examples whose hash is not in `skip`,
        in deterministic chunks; call `advance(n)` as n examples' worth of work completes.
        A value that cannot be computed is None with a reason in the scorer's reason column.

        Optional: `cacheable(row) -> bool`; rows it rejects (e.g. a judge request that got no reply)
        are used in this run but not cached, so the next run scores them again."""


def score_reasons(columns: Mapping[str, str | None]) -> dict[str, str]:
    """The score columns of a declaration, each with its reason column."""
    return {c: r for c, r in columns.items() if r}


def declared_reasons(name: str) -> dict[str, str]:
    """The class-level declaration of the registered scorer `name` (score column -> reason column)."""
    from ..registry import get

    return score_reasons(getattr(get("score", name).target, "columns", None) or {})
