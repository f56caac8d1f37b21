"""What a score table says about itself: each row's content hash (a column) and each scorer's
configuration (Arrow schema metadata under `META_KEY`, kept by Parquet, lost by JSON Lines), and what
that declares: each score column's reason column. A saved table is read back only against the data set it
was scored from (`match_scores`, `read_matching`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.errors import InputError, MissingFileError, Reject
from .base import declared_reasons, score_reasons

if TYPE_CHECKING:
    from ..data.io import Dataset

META_KEY = b"instructsift"
KEY_COLUMNS = ("row", "id", "content_hash")  # every score table's first columns; not scores


def scorer_configs(scorers: Sequence[Any]) -> list[dict[str, Any]]:
    """For each scorer: its name, `cache_key()`, `describe()`, the columns it produces and the reason
    column of each score column (its `columns` declaration)."""
    return [
        {
            "name": s.name,
            "cache_key": s.cache_key(),
            "describe": s.describe(),
            "columns": list(s.schema.names),
            "reasons": score_reasons(s.columns),
        }
        for s in scorers
    ]


def with_configs(table: Any, scorers: Sequence[Any]) -> Any:
    """`table` with the scorers' configurations (scorers, or configurations already made) in its schema
    metadata."""
    configs = [s if isinstance(s, dict) else scorer_configs([s])[0] for s in scorers]
    meta = {"version": 1, "scorers": configs}
    return table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode("utf-8")})


def configs_of(table: Any) -> list[dict[str, Any]] | None:
    """The scorer configurations a score table carries, or None when it has none (JSON Lines, older files)."""
    meta = table.schema.metadata or {}
    if META_KEY not in meta:
        return None
    return json.loads(meta[META_KEY])["scorers"]


def _declared(table: Any) -> list[tuple[str, str, str]]:
    """(score column, reason column, scorer label) for each declared score column the table holds."""
    from ..registry import entries

    configs = configs_of(table)
    declared: list[tuple[str, str, str]] = []
    if configs is None:
        for entry in entries("score"):
            reasons = score_reasons(getattr(entry.target, "columns", None) or {})
            declared += [(col, why, entry.name) for col, why in reasons.items()]
    else:
        for c in configs:
            prefix = f"{c['namespace']}." if c.get("namespace") else ""
            reasons = c["reasons"] if "reasons" in c else declared_reasons(c["name"])
            declared += [(prefix + col, prefix + why, prefix + c["name"]) for col, why in reasons.items()]
    names = set(table.column_names)
    return [(col, why, label) for col, why, label in declared if col in names and why in names]


def reason_columns(table: Any) -> dict[str, str]:
    """Each score column of a score table with its reason column, from the declarations of the scorers
    that made it (kept in the table's metadata, namespaced columns as `NS.column`). A table without
    them (JSON Lines, or a file from before the declarations) is read with the class-level declaration
    of every registered scorer."""
    return {col: why for col, why, _ in _declared(table)}


def reason_groups(table: Any) -> list[tuple[str, str, list[str]]]:
    """The score columns grouped by their reason column: (label, reason column, score columns); the label
    is the score column when it is alone (`judge`, `embedding`), else its scorer's name (`ifd`, `deita`)."""
    groups: dict[str, tuple[str, list[str]]] = {}
    for col, why, label in _declared(table):
        groups.setdefault(why, (label, []))[1].append(col)
    return [(cols[0] if len(cols) == 1 else label, why, cols) for why, (label, cols) in groups.items()]


def match_scores(path: Path, dataset: Dataset) -> tuple[Any, list[int]]:
    """The score table at `path` in `dataset`'s order, and the positions of the rows whose content changed
    since it was scored. A row missing, or with another id and the same content, is an error."""
    import pyarrow as pa

    table = read_score_file(path)
    for name in ("row", "id"):
        if name not in table.column_names:
            raise InputError(
                Reject(str(path), None, None, name, "missing: not a score table from `instructsift score`")
            )
    if "content_hash" not in table.column_names:
        raise InputError(
            Reject(
                str(path),
                None,
                None,
                "content_hash",
                "missing: this score table comes from an older instructsift that did not record what each row's "
                "scores were computed from; score the data again",
            )
        )
    by_row = dict(zip(table.column("row").to_pylist(), range(table.num_rows), strict=True))
    ids = table.column("id").to_pylist()
    stored = table.column("content_hash").to_pylist()
    take, changed = [], []
    for k, ex in enumerate(dataset.examples):
        i = by_row.get(ex.row)
        if i is not None and stored[i] != ex.content_hash:
            changed.append(k)  # its id may have changed with it, when the id is derived from the content
        elif i is None or ids[i] != ex.id:
            found = "no such row" if i is None else f"id {ids[i]!r}"
            raise InputError(
                Reject(
                    str(path),
                    ex.row,
                    None,
                    "id",
                    f"does not match {dataset.path}: row {ex.row} is {ex.id!r}, scores have {found}",
                )
            )
        take.append(i)
    return table.take(pa.array(take, pa.int64())), changed


def read_score_file(p: Path) -> Any:
    """A score table file as written (Parquet, or JSON Lines), not yet matched to a data set."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not p.is_file():
        raise MissingFileError(f"{p}: no such score table")
    if p.suffix == ".parquet":
        return pq.read_table(p)
    return pa.Table.from_pylist([json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()])


def changed_message(dataset: Dataset, changed: Sequence[int], show: int = 5) -> str:
    """The error for rows of `dataset` (positions `changed`) whose content changed since they were scored."""

    def where(ex: Any) -> str:
        line = f"line {ex.line}, " if ex.line is not None else ""
        return f"row {ex.row} ({line}id {ex.id!r})"

    first = "; ".join(where(dataset.examples[i]) for i in changed[:show])
    more = f" and {len(changed) - show} more" if len(changed) > show else ""
    n = len(changed)
    return (
        f"{n} row{'s' if n != 1 else ''} of {dataset.path} changed since these scores were computed: {first}{more}; "
        "score again, or re-score only the changed rows (--rescore-changed)"
    )


def read_matching(path: str | Path, dataset: Dataset) -> Any:
    """The score table at `path` in `dataset`'s order; a row whose content changed since it was scored is an
    error naming the first rows affected (`api.read_scores` can re-score them instead)."""
    table, changed = match_scores(Path(path), dataset)
    if changed:
        raise InputError(Reject(str(path), None, None, "content_hash", changed_message(dataset, changed)))
    return table
