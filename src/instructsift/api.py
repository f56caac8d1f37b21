"""The Python API: read -> score -> select -> write. The CLI calls these same functions."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .data.errors import InputError, MissingColumnError, Reject
from .data.examples import key_column, take
from .data.io import STDOUT, Dataset, as_dataset, read, write_stdout
from .data.io import write as write_records
from .engine.local import score
from .scoring.table import KEY_COLUMNS, changed_message, configs_of, match_scores, scorer_configs
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
        return key_column(self.dataset.examples, "row", self.selection.kept).to_pylist()

    def summary(self) -> dict[str, Any]:
        kept = int(self.selection.keep.sum())
        return {
            "read": self.dataset.n_read,
            "kept": kept,
            "dropped": len(self.dataset.examples) - kept,
            "rejected": len(self.dataset.rejects),
            "dropped_by": dict(self.selection.reason_counts().most_common()),
            "shares": list(self.selection.shares),  # what each ratio was a share of, in words
            "notes": dict(self.dataset.notes.most_common()),
        }


def select(dataset: Dataset | str | os.PathLike[str], scores: Any, *selectors: Any) -> Picked:
    """Apply selectors, in order, to the score table of `dataset` (a `Dataset`, or a path to read).
    Record fields a selector reads (its `record_fields`, e.g. Dolly's `category` for `Stratified`) are
    added to the table it sees."""
    dataset = as_dataset(dataset)
    if scores.num_rows != len(dataset.examples):
        raise ValueError(f"the score table has {scores.num_rows} rows but the data set has {len(dataset.examples)}")
    fields = [f for s in selectors for f in getattr(s, "record_fields", ())]
    view = with_record_fields(scores, dataset, fields) if fields else scores
    if any("content_hash" in getattr(s, "dataset_columns", ()) for s in selectors):
        view = with_content_hash(view, dataset)
    return Picked(dataset, scores, run_selectors(view, selectors))


def with_content_hash(scores: Any, dataset: Dataset) -> Any:
    """`scores` with each example's `content_hash` (what `ExactDedup` groups by), unless it has one."""

    if "content_hash" in scores.column_names:
        return scores
    return scores.append_column("content_hash", key_column(dataset.examples, "content_hash"))


def with_record_fields(scores: Any, dataset: Dataset, names: Any) -> Any:
    """`scores` plus a string column for each record field in `names` that it lacks (null where a record
    has no such field). A field that no record has is an error naming the fields there are."""
    import pyarrow as pa

    missing = [name for name in dict.fromkeys(names) if name not in scores.column_names]
    if not missing:
        return scores
    values: dict[str, list[Any]] = {name: [] for name in missing}
    first = None
    for record in dataset.records(key_column(dataset.examples, "row").to_pylist()):
        first = record if first is None else first
        for name in missing:
            values[name].append(record.get(name) if isinstance(record, dict) else None)
    for name in missing:
        if all(v is None for v in values[name]):
            have = ", ".join(first) if isinstance(first, dict) else "none"
            raise MissingColumnError(f"{dataset.path}: no record has a field {name!r} (record fields: {have})")
        column = pa.array([None if v is None else str(v) for v in values[name]], pa.string())
        scores = scores.append_column(name, column)
    return scores


def read_scores(
    path: str | os.PathLike,
    dataset: Dataset,
    scorers: Sequence[Any] | None = None,
    *,
    rescore_changed: bool = False,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> Any:
    """Read a score table written by `instructsift score` and check that it belongs to `dataset`.

    Every row must match by position and id, and by content hash: a row whose text changed since it was
    scored is an error naming the first rows affected. With `scorers` (those the caller is about to select
    with) a Parquet table must have been made by the same configurations (cache keys); a JSON Lines table
    keeps the hashes but not the configurations, so only its columns are checked. `rescore_changed=True`
    re-scores just the changed rows with `scorers` (through the engine and its cache under `cache_dir`) and
    splices them in: the result equals a fresh score of `dataset`.
    """
    p = Path(path)
    table, changed = match_scores(p, dataset)
    if scorers is not None:
        check_configs(p, table, scorers)
    if not changed:
        return table
    if not rescore_changed:
        raise InputError(Reject(str(p), None, None, "content_hash", changed_message(dataset, changed)))
    if scorers is None:
        raise ValueError("re-scoring the changed rows needs the scorers that made the score table")
    return _rescore(table, dataset, changed, scorers, cache_dir=cache_dir, use_cache=use_cache, progress=progress)


def check_configs(p: Path, table: Any, scorers: Sequence[Any]) -> None:
    """The table was made by `scorers` (same names and cache keys); for JSON Lines, it has their columns."""
    have = configs_of(table)
    if have is None:
        missing = [n for s in scorers for n in s.schema.names if n not in table.column_names]
        if missing:
            raise InputError(
                Reject(str(p), None, None, missing[0], "missing: this score table was made by other scorers")
            )
        return
    want = scorer_configs(scorers)
    if [(c["name"], c["cache_key"]) for c in have] != [(c["name"], c["cache_key"]) for c in want]:
        made = "; ".join(f"{c['name']} ({c['describe']})" for c in have) or "no scorers"
        asked = "; ".join(f"{c['name']} ({c['describe']})" for c in want) or "no scorers"
        raise InputError(
            Reject(str(p), None, None, None, f"made by other scorers: it has {made}, but this run uses {asked}")
        )


def _rescore(table: Any, dataset: Dataset, changed: Sequence[int], scorers: Sequence[Any], **engine: Any) -> Any:
    """`table` with the rows at positions `changed` scored again and put in place."""
    import pyarrow as pa

    subset = Dataset(dataset.path, dataset.format, dataset.container, take(dataset.examples, changed))
    fresh = score(subset, scorers, **engine)
    try:
        old = table.select(fresh.column_names).cast(fresh.schema.remove_metadata())
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ValueError(f"the score table's columns do not match the scorers' ({e})") from None
    both = pa.concat_tables([old, fresh.replace_schema_metadata(None)])
    at = list(range(table.num_rows))
    for k, i in enumerate(changed):
        at[i] = table.num_rows + k
    spliced = both.take(pa.array(at, pa.int64()))
    return pa.table([c.combine_chunks() for c in spliced.columns], schema=fresh.schema)


def write_scores(table: Any, path: str | os.PathLike) -> None:
    """A score table as Parquet (by extension) or JSON Lines, atomically.

    Parquet keeps everything `read_scores` checks: the `content_hash` column and, in the schema metadata,
    each scorer's configuration. JSON Lines keeps `content_hash` (a column like any other) but not the
    configurations, so a JSON Lines table can be checked for stale rows but only by column names for
    the scorers that made it."""
    import pyarrow.parquet as pq

    if str(path).endswith(".parquet"):
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
    if str(path) == STDOUT:
        write_stdout([lines])
        return
    with atomic_path(path) as tmp:
        tmp.write_text(lines, encoding="utf-8")


def write(
    picked: Picked | Dataset, path: str | os.PathLike, *, with_scores: bool = False, to: str | None = None
) -> None:
    """Write the kept records in the input's order and format (or in format `to`: alpaca, sharegpt,
    openai, keeping the other fields); `with_scores` adds the scalar scores."""
    if isinstance(picked, Dataset):
        write_records(picked, key_column(picked.examples, "row").to_pylist(), path, to=to)
        return
    kept = picked.selection.kept.tolist()
    rows = key_column(picked.dataset.examples, "row", kept).to_pylist()
    extra = None
    if with_scores:
        names = [f.name for f in picked.scores.schema if str(f.type) in SCALAR_TYPES and f.name not in KEY_COLUMNS]
        table = picked.scores.select(names).take(kept).to_pylist()
        extra = [{**r, "rank": picked.selection.rank.get(i)} for r, i in zip(table, kept, strict=True)]
    write_records(picked.dataset, rows, path, scores=extra, to=to)


__all__ = ["Picked", "read", "read_scores", "score", "select", "write", "write_scores"]
