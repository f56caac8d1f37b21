"""The local engine: runs scorers in-process with a cache and progress bars, then assembles the score table.

The score table has one row per example, in input order: `row` (0-based position in the input), `id`,
then each scorer's columns. Identical examples are scored once.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.io import Dataset
from ..scoring.cache import ScoreCache


def _progress(enabled: bool) -> Any:
    """A rich bar on a terminal, plain progress lines elsewhere (see `instructsift.progress`)."""
    from ..progress import progress_bar

    return progress_bar(enabled)


def score(
    dataset: Dataset,
    scorers: Sequence[Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    flush_seconds: float = 0.0,
    stats: dict[str, Any] | None = None,
) -> Any:
    """Score every example with every scorer and return the score table (a pyarrow Table).

    Results are cached under `cache_dir` (default: the instructsift cache) by (content, scorer config);
    a rerun, or a run resumed after a crash, scores only what is missing. `stats` (if given) receives
    per-scorer counts of cached and newly scored examples.
    """
    import pyarrow as pa

    from ..models import cache_root

    root = Path(cache_dir) if cache_dir else cache_root()
    unique: dict[str, Any] = {}
    for ex in dataset.examples:
        unique.setdefault(ex.content_hash, ex)
    examples = list(unique.values())
    columns: dict[str, Any] = {
        "row": pa.array([ex.row for ex in dataset.examples], pa.int64()),
        "id": pa.array([ex.id for ex in dataset.examples], pa.string()),
    }
    for scorer in scorers:
        cache = ScoreCache(root, scorer.name, scorer.cache_key(), scorer.schema, flush_seconds)
        done = cache.load() if use_cache else {}
        missing = sum(1 for h in unique if h not in done)
        if stats is not None:
            stats[scorer.name] = {"cached": len(unique) - missing, "scored": missing, "unique": len(unique)}
        with _progress(progress and missing > 0) as bar:
            task = bar.add_task(f"{scorer.name}", total=missing, rate="")

            def advance(n: float, task: int = task, bar: Any = bar) -> None:
                bar.advance(task, n)
                t = bar.tasks[task]
                if t.elapsed:
                    bar.update(task, rate=f"{t.completed / t.elapsed:.1f} rows/s")

            # A scorer may keep some rows out of the cache (a judge's rows that got no reply), so that
            # the next run asks again; and what was scored is saved even when the run stops with an error.
            cacheable = getattr(scorer, "cacheable", None)
            # A scorer that takes `on_row` (a judge server, which pays per request) hands over each result
            # as it arrives, to the cache's journal: a kill loses only the requests in flight.
            kwargs: dict[str, Any] = {}
            if use_cache and "on_row" in inspect.signature(scorer.score).parameters:

                def on_row(h: str, row: dict[str, Any], cache: ScoreCache = cache, keep: Any = cacheable) -> None:
                    if keep is None or keep(row):
                        cache.record(h, row)

                kwargs["on_row"] = on_row
            try:
                for results in scorer.score(examples, frozenset(done), advance, **kwargs):
                    done.update(results)
                    if use_cache:
                        cache.add(results if cacheable is None else [r for r in results if cacheable(r[1])])
            finally:
                if use_cache:
                    cache.close()
        for name in scorer.schema.names:
            if name in columns:
                raise ValueError(f"two scorers both produce the column {name!r}")
            columns[name] = pa.array(
                [done[ex.content_hash][name] for ex in dataset.examples], scorer.schema.field(name).type
            )
    return pa.table(columns)
