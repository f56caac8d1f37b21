"""The Python API: read -> score -> select -> write. The CLI calls these same functions."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .data.errors import InputError, MissingColumnError, Reject
from .data.io import Dataset, read
from .data.io import write as write_records
from .engine.local import score
from .selection import Selection
from .selection import select as run_selectors

# Score columns written beside records with `with_scores`: the scalars, not the per-turn lists.
SCALAR_TYPES = ("double", "int64", "bool", "string")


@dataclass
class Picked:
    """A selection over a data set: what was kept, and why everything else was dropped."""

    dataset: Dataset
    scores: Any
    selection: Selection

    @property
    def rows(self) -> list[int]:
        """Input positions of the kept examples, in input order."""
        return [self.dataset.examples[i].row for i in self.selection.kept.tolist()]

    def summary(self) -> dict[str, Any]:
        kept = int(self.selection.keep.sum())
        return {
            "read": self.dataset.n_read,
            "kept": kept,
            "dropped": len(self.dataset.examples) - kept,
            "rejected": len(self.dataset.rejects),
            "dropped_by": dict(self.selection.reason_counts().most_common()),
            "notes": dict(self.dataset.notes.most_common()),
        }


def select(dataset: Dataset, scores: Any, *selectors: Any) -> Picked:
    """Apply selectors, in order, to the score table of `dataset`. Record fields a selector reads
    (its `record_fields`, e.g. Dolly's `category` for `Stratified`) are added to the table it sees."""
    if scores.num_rows != len(dataset.examples):
        raise ValueError(f"the score table has {scores.num_rows} rows but the data set has {len(dataset.examples)}")
    fields = [f for s in selectors for f in getattr(s, "record_fields", ())]
    view = with_record_fields(scores, dataset, fields) if fields else scores
    if any("content_hash" in getattr(s, "dataset_columns", ()) for s in selectors):
        view = with_content_hash(view, dataset)
    return Picked(dataset, scores, run_selectors(view, selectors))


def with_content_hash(scores: Any, dataset: Dataset) -> Any:
    """`scores` with each example's `content_hash` (what `ExactDedup` groups by), unless it has one."""
    import pyarrow as pa

    if "content_hash" in scores.column_names:
        return scores
    return scores.append_column("content_hash", pa.array([ex.content_hash for ex in dataset.examples], pa.string()))


def with_record_fields(scores: Any, dataset: Dataset, names: Any) -> Any:
    """`scores` plus a string column for each record field in `names` that it lacks (null where a record
    has no such field). A field that no record has is an error naming the fields there are."""
    import pyarrow as pa

    for name in dict.fromkeys(names):
        if name in scores.column_names:
            continue
        values = [ex.record.get(name) if isinstance(ex.record, dict) else None for ex in dataset.examples]
        if all(v is None for v in values):
            first = dataset.examples[0].record if dataset.examples else None
            have = ", ".join(first) if isinstance(first, dict) else "none"
            raise MissingColumnError(f"{dataset.path}: no record has a field {name!r} (record fields: {have})")
        scores = scores.append_column(name, pa.array([None if v is None else str(v) for v in values], pa.string()))
    return scores


def read_scores(path: str | os.PathLike, dataset: Dataset) -> Any:
    """Read a score table written by `instructsift score` and check that it belongs to `dataset`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if p.suffix == ".parquet":
        table = pq.read_table(p)
    else:
        table = pa.Table.from_pylist([json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()])
    for name in ("row", "id"):
        if name not in table.column_names:
            raise InputError(Reject(str(p), None, None, name, "missing: not a score table from `instructsift score`"))
    by_row = dict(zip(table.column("row").to_pylist(), range(table.num_rows), strict=True))
    ids = table.column("id").to_pylist()
    take = []
    for ex in dataset.examples:
        i = by_row.get(ex.row)
        if i is None or ids[i] != ex.id:
            found = "no such row" if i is None else f"id {ids[i]!r}"
            raise InputError(
                Reject(
                    str(p),
                    ex.row,
                    None,
                    "id",
                    f"does not match {dataset.path}: row {ex.row} is {ex.id!r}, scores have {found}",
                )
            )
        take.append(i)
    return table.take(pa.array(take, pa.int64()))


def write_scores(table: Any, path: str | os.PathLike) -> None:
    """A score table as Parquet (by extension) or JSON Lines, atomically."""
    import pyarrow.parquet as pq

    if str(path).endswith(".parquet"):
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
    with atomic_path(path) as tmp:
        tmp.write_text(lines, encoding="utf-8")


def write(picked: Picked | Dataset, path: str | os.PathLike, *, with_scores: bool = False) -> None:
    """Write the kept records in the input's format and order; `with_scores` adds the scalar scores."""
    if isinstance(picked, Dataset):
        write_records(picked, [ex.row for ex in picked.examples], path)
        return
    kept = picked.selection.kept.tolist()
    rows = [picked.dataset.examples[i].row for i in kept]
    extra = None
    if with_scores:
        names = [f.name for f in picked.scores.schema if str(f.type) in SCALAR_TYPES and f.name not in ("row", "id")]
        table = picked.scores.select(names).take(kept).to_pylist()
        extra = [{**r, "rank": picked.selection.rank.get(i)} for r, i in zip(table, kept, strict=True)]
    write_records(picked.dataset, rows, path, scores=extra)


__all__ = ["Picked", "read", "read_scores", "score", "select", "write", "write_scores"]
