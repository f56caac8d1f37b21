"""The on-disk score cache: Parquet shards keyed by (example content hash, scorer configuration hash).

Each flush writes one new shard atomically, so a run killed at any moment loses at most the results
since the last flush; the next run reads every shard and scores only what is missing. Reading stays in
Arrow: each shard is filtered to the content hashes asked for as it is read, so memory follows the data
set being scored, not the size of the cache.

A scorer that pays per row (a judge server) also hands over each result the moment it arrives
(`record`): it is appended to this run's journal, `journal-*.jsonl` beside the shards, flushed and
fsync'd, so a `kill -9` loses only the requests in flight. Journals count as done on the next run; a
run's own journal is deleted once its rows are in a shard, and journals that killed runs left behind
are folded into a shard by the next run that reads them (a journal whose run is alive is locked, and
left alone).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ..atomic import atomic_path

try:  # POSIX; elsewhere journals are not locked (a concurrent run may fold a live one: rows stay in its shards)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MAX_SHARDS = 64


class ScoreCache:
    """Per-scorer cache folder `<root>/scores/<scorer>-<key>/part-*.parquet` (and `journal-*.jsonl`)."""

    def __init__(self, root: str | os.PathLike, scorer: str, key: str, schema: Any, flush_seconds: float = 0.0):
        import pyarrow as pa

        self.dir = Path(root) / "scores" / f"{scorer}-{key}"
        self.schema = pa.schema([("content_hash", pa.string()), *schema])
        self.flush_seconds = flush_seconds
        self._pending: list[Any] = []  # Arrow tables in `self.schema`
        self._last = time.monotonic()
        self._journal: IO[str] | None = None
        self._journal_path: Path | None = None
        self._journaled: dict[str, dict[str, Any]] = {}  # what this run's journal holds
        self._left: dict[Path, dict[str, dict[str, Any]]] = {}  # other runs' journals read by `read`

    def read(self, hashes: Any = None) -> Any:
        """The cached rows as one Arrow table in `self.schema`, one row per content hash (a later shard
        wins over an earlier one; journals that other runs left count too), restricted to `hashes` (an
        Arrow string array) when given. For small caches and tests: the engine reads `batches`."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.concat_tables([self.schema.empty_table(), *self.batches()])
        if hashes is not None:
            table = table.filter(pc.is_in(table.column("content_hash"), value_set=hashes))
        return last_wins(table)

    def batches(self, size: int = 65_536) -> Iterator[Any]:
        """Every cached row, as Arrow tables in `self.schema` of at most `size` rows: the shards in order,
        then journals that other runs left (a line cut short by a kill skipped); where a hash is held twice,
        the later row is the one that counts. Read a batch at a time, so that a million cached rows are
        never decoded at once. Unreadable shards (a foreign or damaged file) are skipped."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        for shard in self._shards():
            try:  # a damaged shard only costs its rows a rescore
                with pq.ParquetFile(shard, pre_buffer=False) as f:
                    for batch in f.iter_batches(batch_size=size, columns=self.schema.names):
                        yield pa.Table.from_batches([batch]).cast(self.schema)  # list items: `item`
            except Exception:  # noqa: BLE001
                continue
        for journal in self._journals():
            if journal != self._journal_path:
                rows = self._left[journal] = _read_journal(journal, self.schema.names[1:])
                if rows:
                    yield self.table_of(list(rows.items()))

    def load(self) -> dict[str, dict[str, Any]]:
        """Every cached result, by content hash, as Python objects (for tests and small caches; the
        engine uses `read`)."""
        table = self.read()
        return {rec.pop("content_hash"): rec for rec in table.to_pylist()}

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.exists() else []

    def _journals(self) -> list[Path]:
        return sorted(self.dir.glob("journal-*.jsonl")) if self.dir.exists() else []

    def record(self, content_hash: str, row: dict[str, Any]) -> None:
        """Keep one result now, before its chunk completes: a line in this run's journal, on disk on return."""
        if self._journal is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal_path = self.dir / f"journal-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
            self._journal = open(self._journal_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _end_journal
            if fcntl is not None:
                fcntl.flock(self._journal, fcntl.LOCK_EX)
        self._journal.write(json.dumps([content_hash, row], ensure_ascii=True) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._journaled[content_hash] = row

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
        """Write the pending results, and what this run's journal holds beyond them (the replies of a chunk
        that an error cut short), as a shard; then drop the journal."""
        import pyarrow as pa

        tables = list(self._pending)
        if self._journaled:
            pending = {h for t in tables for h in t.column("content_hash").to_pylist()}
            extra = [(h, r) for h, r in self._journaled.items() if h not in pending]
            if extra:
                tables.append(self.table_of(extra))
        if tables:
            self.write_shard(pa.concat_tables(tables))
            self._pending = []
            self._last = time.monotonic()
        self._end_journal()

    def _end_journal(self) -> None:
        if self._journal is not None:
            self._journal_path.unlink(missing_ok=True)  # type: ignore[union-attr]
            self._journal.close()  # closing releases the lock
            self._journal = self._journal_path = None
        self._journaled = {}

    def write_shard(self, table: Any, name: str | None = None) -> Path:
        """Write `table` (in `self.schema`) as one new shard, atomically."""
        import pyarrow.parquet as pq

        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / (name or f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet")
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        return target

    def _fold_left_journals(self) -> None:
        """Move the rows of journals that killed runs left (read by `read`) into a shard, then delete them."""
        dead: list[tuple[Path, IO[str]]] = []
        for path in self._left:
            try:
                f = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue
            if fcntl is not None:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # its run is alive: it folds its own journal
                    f.close()
                    continue
            dead.append((path, f))
        try:
            rows = [r for path, _ in dead for r in self._left[path].items()]
            if rows:
                self.write_shard(self.table_of(rows))
            for path, _ in dead:
                path.unlink(missing_ok=True)
        finally:
            for _, f in dead:
                f.close()
        self._left = {}

    def close(self) -> None:
        """Flush, fold journals that earlier runs left, and merge shards into one when there are many."""
        self.flush()
        self._fold_left_journals()
        shards = self._shards()
        if len(shards) > MAX_SHARDS:
            merged = self._merge(shards)
            for shard in shards:
                if shard != merged:
                    shard.unlink(missing_ok=True)

    def _merge(self, shards: list[Path]) -> Path:
        """The shards, in order, as one new shard, written a shard at a time (a million rows' results are
        never all in memory); `read` keeps the last of a hash that several shards hold, as before."""
        import pyarrow.parquet as pq

        target = self.dir / f"part-{time.time_ns():020d}-merged.parquet"
        with atomic_path(target) as tmp, pq.ParquetWriter(tmp, self.schema) as writer:
            for shard in shards:
                try:
                    writer.write_table(pq.read_table(shard, schema=self.schema).cast(self.schema))
                except Exception:  # noqa: BLE001 - a damaged shard only costs its rows a rescore
                    continue
        return target


def _read_journal(path: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The results in a journal; a line that is not a whole result (cut short by a kill) is skipped."""
    out: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        try:
            content_hash, row = json.loads(line)
        except (ValueError, TypeError):
            continue
        if isinstance(content_hash, str) and isinstance(row, dict) and set(row) == set(names):
            out[content_hash] = row
    return out


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
