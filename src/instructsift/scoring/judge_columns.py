"""The columns every judge back end writes (`ServerJudge`, `LocalJudge`), and one row of them."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    "judge",
    "judge_raw",
    "judge_reason",
    "judge_source",
    "judge_mass",
    "judge_attempts",
    "judge_truncated",
)
COLUMN_REASONS: dict[str, str | None] = {c: "judge_reason" if c == "judge" else None for c in COLUMNS}


def judge_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("judge", pa.float64()),
            ("judge_raw", pa.string()),
            ("judge_reason", pa.string()),
            ("judge_source", pa.string()),
            ("judge_mass", pa.float64()),
            ("judge_attempts", pa.int64()),
            ("judge_truncated", pa.bool_()),
        ]
    )


def judge_row(
    score: float | None = None,
    *,
    raw: str | None = None,
    reason: str | None = None,
    source: str | None = None,
    mass: float | None = None,
    attempts: int | None = None,
    truncated: bool = False,
) -> dict[str, Any]:
    """One example's judge columns; a missing score always carries its reason."""
    if score is None and not reason:
        raise ValueError("a missing judge score needs a reason")
    return {
        "judge": score,
        "judge_raw": raw,
        "judge_reason": None if score is not None else reason,
        "judge_source": source,
        "judge_mass": mass,
        "judge_attempts": attempts,
        "judge_truncated": truncated,
    }
