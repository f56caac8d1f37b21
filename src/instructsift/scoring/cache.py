"""The on-disk score cache: Parquet shards keyed by (example content hash, scorer configuration hash).

Each flush writes one new shard atomically, so a run killed at any moment loses at most the results
since the last flush; the next run reads every shard and scores only what is missing. Reading stays in
Arrow: each shard is filtered to the content hashes asked for as it is read, so memory follows the data
set being scored, not the size of the cache.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_path

MAX_SHARDS = 64


class ScoreCache:
    """Per-scorer cache folder `<root>/scores/<scorer>-<key>/part-*.parquet`."""

    def __init__(self, root: str | os.PathLike, scorer: str, key: str, schema: Any, flush_seconds: float = 0.0):
        import pyarrow as pa

        self.dir = Path(root) / "scores" / f"{scorer}-{key}"
        self.schema = pa.schema([("content_hash", pa.string()), *schema])
        self.flush_seconds = flush_seconds
        self._pending: list[Any] = []  # Arrow tables in `self.schema`
        self._last = time.monotonic()

    def read(self, hashes: Any = None) -> Any:
        """The cached rows as one Arrow table in `self.schema`, one row per content hash (a later shard
        wins over an earlier one), restricted to `hashes` (an Arrow string array) when given. Unreadable
        shards (a foreign or damaged file) are skipped."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        parts = []
        for shard in self._shards():
            try:
                table = pq.read_table(shard, schema=self.schema).cast(self.schema)  # list items: `item`
            except Exception:  # noqa: BLE001 - a damaged shard only costs its rows a rescore
                continue
            if hashes is not None:
                wanted = pc.is_in(table.column("content_hash"), value_set=hashes)
                if not pc.all(wanted).as_py():  # filtering copies: only when some rows are not wanted
                    table = table.filter(wanted)
            parts.append(table)
        return last_wins(pa.concat_tables(parts) if parts else self.schema.empty_table())

    def load(self) -> dict[str, dict[str, Any]]:
        """Every cached result, by content hash, as Python objects (for tests and small caches; the
        engine uses `read`)."""
        table = self.read()
        return {rec.pop("content_hash"): rec for rec in table.to_pylist()}

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.exists() else []

    def table_of(self, results: Sequence[tuple[str, dict[str, Any]]]) -> Any:
        """A scorer's chunk, `[(content_hash, {column: value})]`, as an Arrow table in `self.schema`."""
        import pyarrow as pa

        names = self.schema.names[1:]
        columns = [pa.array([h for h, _ in results], pa.string())]
        columns += [pa.array([r.get(n) for _, r in results], self.schema.field(n).type) for n in names]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def add(self, results: Sequence[tuple[str, dict[str, Any]]] | Any) -> None:
        """Queue results (a scorer's chunk, or a table from `table_of`) and flush when it is time."""
        table = results if hasattr(results, "schema") else self.table_of(results)
        if table.num_rows:
            self._pending.append(table)
        if time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        import pyarrow as pa

        self._write(pa.concat_tables(self._pending))
        self._pending = []
        self._last = time.monotonic()

    def _write(self, table: Any, name: str | None = None) -> Path:
        import pyarrow.parquet as pq

        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / (name or f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet")
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        return target

    def close(self) -> None:
        """Flush, and merge shards into one when there are many."""
        self.flush()
        shards = self._shards()
        if len(shards) > MAX_SHARDS:
            merged = self._write(self.read(), name=f"part-{time.time_ns():020d}-merged.parquet")
            for shard in shards:
                if shard != merged:
                    shard.unlink(missing_ok=True)


def last_wins(table: Any) -> Any:
    """`table` with one row per content hash: the last one, in the order of first appearance."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hashes = table.column("content_hash")
    unique = pc.unique(hashes)
    if len(unique) == table.num_rows:
        return table
    n = table.num_rows
    import numpy as np

    backwards = pc.index_in(unique, value_set=hashes.take(pa.array(np.arange(n - 1, -1, -1, dtype=np.int64))))
    return table.take(pc.subtract(pa.scalar(n - 1, pa.int64()), backwards.cast(pa.int64())))
