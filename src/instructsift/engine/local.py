"""The local engine: runs scorers in-process with a cache and progress bars, then assembles the score table.

The score table has one row per example, in input order: `row` (0-based position in the input), `id`,
`content_hash`, then each scorer's columns. Identical examples are scored once. The work stays in Arrow:
the cache is read a batch at a time and each scorer's chunk becomes an Arrow table, each put in its rows'
places as it arrives (`engine.assemble`: no Python object per cached value, no column held twice).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.examples import ExampleView, key_column
from ..data.io import Dataset, as_dataset
from ..scoring.base import chunk_for, chunk_option
from ..scoring.cache import ScoreCache
from ..scoring.table import KEY_COLUMNS, with_configs
from .assemble import Assembly, HashIndex


def _progress(enabled: bool) -> Any:
    """A rich bar on a terminal, plain progress lines elsewhere (see `instructsift.progress`)."""
    from ..progress import progress_bar

    return progress_bar(enabled)


SMALL_RUN = 4096  # unique rows; a run this small is cached in steps of an eighth of it (`persist_step`)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during scoring, with what was kept: the message says how many rows are cached."""


def persist_step(scorer: Any, n: int) -> int | None:
    """Rows per slice that the engine hands `scorer` when it scores `n` unique rows, each slice cached as
    it finishes; None: all at once (the scorer cuts its own chunks). A small run (at most `SMALL_RUN`
    rows) is sliced in eighths of at least 16 rows, no larger than the scorer's own chunk, so that Ctrl-C
    keeps most of the work; a chunk size the user set is kept as given. The slices depend only on `n`,
    so a resumed run scores exactly the batches an uninterrupted one would (the same bytes)."""
    size, given = chunk_option(scorer)
    if given or n > SMALL_RUN:
        return None
    step = max(16, -(-n // 8))
    return step if size is None or step < size else None


def chunk_size(scorer: Any, device: str, n: int | None = None) -> int:
    """Examples per chunk that `scorer` is scored in on `device` ("cpu", "cuda", "cuda:0") for `n` unique
    rows: the engine's slice of a small run (`persist_step`), else the scorer's own cut (`chunk_for`: its
    chunk size, or the one it declares for the device's kind); a scorer that declares neither gets all
    `n` rows at once. The Ray engine ships chunks of this size, so that both score the same batches."""
    step = persist_step(scorer, n) if n is not None else None
    if step:
        return step
    try:
        return chunk_for(scorer, device)
    except AttributeError:
        if n is None:
            raise
        return max(1, n)


def unique_examples(examples: Sequence[Any], hashes: Any) -> tuple[Sequence[Any], Any, Any]:
    """`(firsts, unique, positions)` for `examples` and their content hashes `hashes` (an Arrow array): the
    first example of each content in input order (a view of `examples`: nothing copied), their hashes
    (`pc.unique(hashes)`) and their positions in `examples`."""
    import numpy as np
    import pyarrow.compute as pc

    unique = pc.unique(hashes)
    if len(unique) == len(hashes):
        return examples, unique, np.arange(len(hashes))
    positions = np.asarray(pc.index_in(unique, value_set=hashes).to_numpy(), dtype=np.int64)
    return ExampleView(examples, positions.tolist()), unique, positions


def score(
    dataset: Dataset | str | os.PathLike[str],
    scorers: Sequence[Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    flush_seconds: float = 0.0,
    stats: dict[str, Any] | None = None,
) -> Any:
    """Score every example of `dataset` (a `Dataset`, or a path to read) with every scorer and return the
    score table (a pyarrow Table).

    `cache_dir` is the cache root for the call (default: `models.cache_root()`): the scores, and the
    models the scorers convert and the fingerprints they remember, all go under it.
    Results are cached by (content, scorer config);
    a rerun, or a run resumed after a crash, scores only what is missing. `stats` (if given) receives
    per-scorer counts of cached and newly scored examples. The table's schema metadata records each
    scorer's configuration (`scoring.table`).
    """
    from ..models import use_cache_root

    dataset = as_dataset(dataset)
    with use_cache_root(cache_dir) as root:
        return _score(dataset, scorers, root, use_cache, progress, flush_seconds, stats)


def _score(
    dataset: Dataset,
    scorers: Sequence[Any],
    root: Path,
    use_cache: bool,
    progress: bool,
    flush_seconds: float,
    stats: dict[str, Any] | None,
) -> Any:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    seen = set()
    for scorer in scorers:
        for name in scorer.schema.names:
            if name in seen or name in KEY_COLUMNS:
                raise ValueError(f"two scorers both produce the column {name!r}")
            seen.add(name)
    # Keys as Arrow columns; the scorers get the first example of each content (a view: nothing copied).
    hashes = key_column(dataset.examples, "content_hash")
    examples, unique, firsts = unique_examples(dataset.examples, hashes)
    columns: dict[str, Any] = {
        "row": key_column(dataset.examples, "row"),
        "id": key_column(dataset.examples, "id"),
        "content_hash": hashes,
    }
    index = HashIndex(hashes)  # shared by the scorers: each result is put in place as it arrives
    for scorer in scorers:
        cache = ScoreCache(root, scorer.name, scorer.cache_key(), scorer.schema, flush_seconds)
        assembly = Assembly(index, scorer.schema)
        if use_cache:
            for batch in cache.batches():
                assembly.add(batch)
        covered = assembly.covered[firsts]
        missing = len(unique) - int(covered.sum())
        # All cached: the scorer is not asked, and a million hashes are not made Python strings for it.
        skip = frozenset(pc.filter(unique, pa.array(covered)).to_pylist()) if missing else frozenset()
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
            step = persist_step(scorer, len(examples)) or max(1, len(examples))
            starts = (
                [lo for lo in range(0, len(examples), step) if not covered[lo : lo + step].all()] if missing else []
            )
            try:
                for lo in starts:
                    part = examples if step >= len(examples) else examples[lo : lo + step]
                    for results in scorer.score(part, skip, advance, **kwargs):
                        chunk = cache.table_of(results)
                        assembly.add(chunk)
                        if use_cache:
                            keep = None if cacheable is None else pa.array([bool(cacheable(r)) for _, r in results])
                            cache.add(chunk if keep is None else chunk.filter(keep))
            except KeyboardInterrupt:
                held = int(assembly.covered[firsts].sum()) if use_cache else 0
                kept = f"{held} of {len(unique)} rows are cached" if use_cache else "nothing is cached (--no-cache)"
                raise Interrupted(
                    f"interrupted during {scorer.name}: {kept}; run the same command again to resume"
                ) from None
            finally:
                if use_cache:
                    cache.close()
        if not assembly.covered.all():
            row = dataset.examples[int(np.argmin(assembly.covered))].row
            raise RuntimeError(f"the {scorer.name} scorer returned nothing for row {row} (a bug in the scorer)")
        for name, column in assembly.columns().items():
            columns[name] = column.cast(scorer.schema.field(name).type)
    return with_configs(pa.table(columns), scorers)
