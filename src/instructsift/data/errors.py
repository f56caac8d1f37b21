"""Bad input: where it is (file, line or row, field) and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Reject:
    """One input row that could not be used, with its position and the reason."""

    path: str
    row: int | None
    line: int | None
    field: str | None
    reason: str
    record: Any = None

    def where(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "row": self.row,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "record": self.record,
        }


class InputError(ValueError):
    """Raised for bad input when the user did not ask to skip it."""

    def __init__(self, reject: Reject):
        self.reject = reject
        super().__init__(f"{reject.where()}: {reject.reason}")


class FieldError(ValueError):
    """Raised while parsing one record; the reader adds the file, line and row."""

    def __init__(self, field: str | None, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(reason)
