"""What a score table says about itself: each row's content hash (a column) and each scorer's
configuration (Arrow schema metadata under `META_KEY`, kept by Parquet, lost by JSON Lines), and what
that declares: each score column's reason column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .base import declared_reasons, score_reasons

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
