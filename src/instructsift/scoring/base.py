"""What every scorer provides. Scorers look at examples and add named columns; they never decide.

The engine caches each scorer's results by (example content hash, `cache_key()`), so a scorer must
put into its key everything that changes its numbers (model fingerprint, dtype, template, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from ..data.example import Example


class Scorer(Protocol):
    name: str  # also the cache folder's prefix

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
