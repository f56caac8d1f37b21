"""What a score table says about itself: each row's content hash (a column) and each scorer's
configuration (Arrow schema metadata under `META_KEY`, kept by Parquet, lost by JSON Lines)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

META_KEY = b"instructsift"
KEY_COLUMNS = ("row", "id", "content_hash")  # every score table's first columns; not scores


def scorer_configs(scorers: Sequence[Any]) -> list[dict[str, Any]]:
    """For each scorer: its name, `cache_key()`, `describe()`, the columns it produces and the reason
    column of each score column (its `columns` declaration)."""
    from ..scoring.base import score_reasons

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
