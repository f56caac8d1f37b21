"""The on-disk score cache: Parquet shards keyed by (example content hash, scorer configuration hash).

Each flush writes one new shard atomically, so a run killed at any moment loses at most the results
since the last flush; the next run loads every shard and scores only what is missing.
"""

from __future__ import annotations

import os
import time
import uuid
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
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._last = time.monotonic()

    def load(self) -> dict[str, dict[str, Any]]:
        """Every cached result, by content hash. Unreadable shards (a foreign or damaged file) are skipped."""
        import pyarrow.parquet as pq

        out: dict[str, dict[str, Any]] = {}
        for shard in self._shards():
            try:
                table = pq.read_table(shard, schema=self.schema)
            except Exception:  # noqa: BLE001 - a damaged shard only costs its rows a rescore
                continue
            for rec in table.to_pylist():
                out[rec.pop("content_hash")] = rec
        return out

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet")) if self.dir.exists() else []

    def add(self, results: list[tuple[str, dict[str, Any]]]) -> None:
        self._pending.extend(results)
        if time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        self._write(self._pending)
        self._pending = []
        self._last = time.monotonic()

    def _write(self, results: list[tuple[str, dict[str, Any]]], name: str | None = None) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [{"content_hash": h, **r} for h, r in results]
        table = pa.Table.from_pylist(rows, schema=self.schema)
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
            merged = self._write(list(self.load().items()), name=f"part-{time.time_ns():020d}-merged.parquet")
            for shard in shards:
                if shard != merged:
                    shard.unlink(missing_ok=True)
