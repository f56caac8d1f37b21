"""Reading many shards (JSON Lines or Parquet) into one `Dataset`, each shard parsed by a Ray task.

Shards are taken in sorted-path order and their rows numbered across them (shard 1's rows, then shard
2's, ...). Each task reads its shard with the same readers as `data.io.read` and parses every record with
the same parsers (`data.records`), so a bad row is a `Reject` naming its shard, line and field, exactly
as `read` would name it. The record format is detected once, from the first shard's first rows (or
given). Records travel back untouched (pickled), so that a selection is written back faithfully;
Parquet shards are also concatenated into the data set's Arrow table.
"""

from __future__ import annotations

import glob
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data.errors import FieldError, InputError, Reject, UserError
from ..data.example import Example, Message
from ..data.io import (
    Dataset,
    Unreadable,
    _assign_ids,
    _raw_records,
    container_of,
    format_unknown,
    notes_of,
    parse_record,
)
from ..data.records import FORMATS, PARSERS, detect_format
from .ray import init

SHARD_CONTAINERS = ("jsonl", "parquet")
PARSE_TASK_CPUS = 0.5  # CPUs per shard-parsing task


def _kind(path: Path) -> str | None:
    """A file's container, or None for one that is not data (notes, a licence) beside the shards."""
    try:
        return container_of(path)
    except UserError:
        return None


def shard_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """A glob pattern, a folder (its *.jsonl, *.jsonl.gz and *.parquet files) or a list of paths, sorted."""
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        if p.is_dir():
            found = [q for q in p.iterdir() if q.is_file() and _kind(q) in SHARD_CONTAINERS]
        elif glob.has_magic(str(paths)):
            found = [Path(q) for q in glob.glob(str(paths))]
        else:
            found = [p]
    else:
        found = [Path(q) for q in paths]
    if not found:
        raise FileNotFoundError(f"{paths}: no shards found")
    for q in found:
        if not q.is_file():
            raise FileNotFoundError(f"{q}: no such file")
    kinds = {container_of(q) for q in found}
    if not kinds <= set(SHARD_CONTAINERS) or len(kinds) > 1:
        raise ValueError(f"{paths}: shards must all be JSON Lines or all Parquet, got {', '.join(sorted(kinds))}")
    return sorted(found)


def _parse_shard(batch: Any, fmt: str, fields: Mapping[str, str] | None) -> Any:
    """One shard's rows: (shard, position, line, pickled record, pickled messages or (field, reason))."""
    import pyarrow as pa

    parser = PARSERS[fmt]
    out: dict[str, list[Any]] = {k: [] for k in ("shard", "pos", "line", "record", "parsed", "ok")}
    for shard, path in zip(batch.column("shard").to_pylist(), batch.column("path").to_pylist(), strict=True):
        raw = _raw_records(Path(path), container_of(path)).records
        for pos, (line, record) in enumerate(raw):
            try:
                parsed, ok = [m.as_dict() for m in parse_record(record, parser, fields)], True
            except FieldError as e:
                parsed, ok = (e.field, e.reason), False
            if isinstance(record, Unreadable):
                record = record.text
            for key, value in zip(out, (shard, pos, line, pickle.dumps(record), pickle.dumps(parsed), ok), strict=True):
                out[key].append(value)
    return pa.table(out)


def read_shards(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    format: str | None = None,
    on_error: str = "fail",
    fields: Mapping[str, str] | None = None,
    address: str | None = None,
) -> Dataset:
    """Read every shard into one `Dataset`, as `data.io.read` reads one file (same options and errors)."""
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    files = shard_paths(paths)
    container = container_of(files[0])
    first = _raw_records(files[0], container).records
    fmt = format or next((f for _, r in first[:1000] if (f := detect_format(r, fields))), None)
    if fmt is None:
        if not first:
            raise InputError(Reject(str(files[0]), None, None, None, "no records"))
        raise format_unknown(str(files[0]), *first[0])
    del first
    ray = init(address)
    items = [{"shard": i, "path": str(p)} for i, p in enumerate(files)]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _parse_shard,
        fn_kwargs={"fmt": fmt, "fields": dict(fields) if fields else None},
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=PARSE_TASK_CPUS,
    )
    by_shard: dict[int, Any] = {}
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        if table.num_rows:
            by_shard.setdefault(table.column("shard")[0].as_py(), []).append(table)
    examples: list[Example] = []
    rejects: list[Reject] = []
    row = 0
    for shard, path in enumerate(files):
        rows = sorted(
            (r for t in by_shard.get(shard, []) for r in t.to_pylist()),
            key=lambda r: r["pos"],
        )
        for r in rows:
            record, parsed = pickle.loads(r["record"]), pickle.loads(r["parsed"])
            if not r["ok"]:
                reject = Reject(str(path), row + r["pos"], r["line"], parsed[0], parsed[1], record)
                if on_error == "fail":
                    raise InputError(reject)
                rejects.append(reject)
                continue
            rid = record.get("id")
            ex_id = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else ""
            messages = tuple(Message(**m) for m in parsed)
            examples.append(Example(ex_id, messages, row + r["pos"], r["line"], record))
        row += len(rows)
    if row == 0:
        raise InputError(Reject(str(paths), None, None, None, "no records"))
    _assign_ids(examples)
    table = None
    if container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")
    return Dataset(
        str(paths if isinstance(paths, (str, os.PathLike)) else files[0].parent),
        fmt,
        container,
        examples,
        rejects,
        row,
        table,
        notes=notes_of(examples),
    )
