"""The local engine: runs scorers in-process with a cache and progress bars, then assembles the score table.

The score table has one row per example, in input order: `row` (0-based position in the input), `id`,
`content_hash`, then each scorer's columns. Identical examples are scored once. The work stays in Arrow:
the cache is read filtered to the data set's content hashes, each scorer's chunk becomes an Arrow table,
and the columns are taken by hash (no Python object per cached value).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.example import Example
from ..data.io import Dataset
from ..scoring.cache import ScoreCache, last_wins
from .table import KEY_COLUMNS, with_configs


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
    per-scorer counts of cached and newly scored examples. The table's schema metadata records each
    scorer's configuration (`engine.table`).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..models import cache_root

    root = Path(cache_dir) if cache_dir else cache_root()
    seen = set()
    for scorer in scorers:
        for name in scorer.schema.names:
            if name in seen or name in KEY_COLUMNS:
                raise ValueError(f"two scorers both produce the column {name!r}")
            seen.add(name)
    first: dict[str, Example] = {}
    for ex in dataset.examples:
        first.setdefault(ex.content_hash, ex)
    examples = list(first.values())
    unique = pa.array(list(first), pa.string())
    hashes = pa.array([ex.content_hash for ex in dataset.examples], pa.string())
    columns: dict[str, Any] = {
        "row": pa.array([ex.row for ex in dataset.examples], pa.int64()),
        "id": pa.array([ex.id for ex in dataset.examples], pa.string()),
        "content_hash": hashes,
    }
    for scorer in scorers:
        cache = ScoreCache(root, scorer.name, scorer.cache_key(), scorer.schema, flush_seconds)
        done = cache.read(unique) if use_cache else cache.schema.empty_table()
        skip = frozenset(done.column("content_hash").to_pylist())
        missing = len(unique) - len(skip)
        if stats is not None:
            stats[scorer.name] = {"cached": len(skip), "scored": missing, "unique": len(unique)}
        parts = [done]
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
                for results in scorer.score(examples, skip, advance, **kwargs):
                    chunk = cache.table_of(results)
                    parts.append(chunk)
                    if use_cache:
                        keep = None if cacheable is None else pa.array([bool(cacheable(r)) for _, r in results])
                        cache.add(chunk if keep is None else chunk.filter(keep))
            finally:
                if use_cache:
                    cache.close()
        # One copy at a time: the chunks joined, then let go, then put in order (a take over the chunks would
        # join them itself, with the chunks still held: three copies of a million MinHash rows at once).
        results_table = last_wins(pa.concat_tables(parts)).combine_chunks()
        parts.clear()
        del done
        at = pc.index_in(hashes, value_set=results_table.column("content_hash"))
        if at.null_count:
            row = dataset.examples[pc.index(pc.is_null(at), True).as_py()].row
            raise RuntimeError(f"the {scorer.name} scorer returned nothing for row {row} (a bug in the scorer)")
        in_order = len(at) == results_table.num_rows and pc.all(pc.equal(at, pa.array(np.arange(len(at))))).as_py()
        if not in_order:  # in order: the usual case, no copy
            results_table = results_table.take(at)
        for name in scorer.schema.names:
            column = results_table.column(name)
            columns[name] = (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()).cast(
                scorer.schema.field(name).type
            )
    return with_configs(pa.table(columns), scorers)
