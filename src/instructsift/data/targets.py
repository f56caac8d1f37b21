"""Target files for target-aware selection (`--target`): examples of the tasks the user cares about.

Any supported container and record format; a target row needs an instruction, not an answer (an Alpaca
row without `output`, a conversation without an assistant turn). `task_field` names the record field that
groups rows into tasks; without it every row is its own task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FieldError, InputError, MissingFileError, OptionError, Reject
from .example import Example, Message
from .records import FORMATS, PARSERS, check_text, detect_format


@dataclass
class Targets:
    path: str
    examples: list[Example]
    tasks: list[str]  # one label per example


def _parse(record: Any, fmt: str) -> tuple[Message, ...]:
    """A target record's messages: the format's parser, with the answer optional."""
    reason = getattr(record, "reason", None)  # a line that is not JSON (io.Unreadable)
    if reason is not None and not isinstance(record, Mapping):
        raise FieldError(None, reason)
    if not isinstance(record, Mapping):
        raise FieldError(None, f"a record must be an object, got {type(record).__name__}")
    check_text(record)
    if fmt == "alpaca" and not record.get("output") and not record.get("response"):
        messages = PARSERS[fmt]({**record, "output": "-"})[:-1]  # the answer is optional here
    else:
        messages = PARSERS[fmt](record)
    if not any(m.role == "user" for m in messages):
        raise FieldError(None, "no user turn: a target needs an instruction")
    return tuple(messages)


def read_targets(path: str | Path, *, task_field: str | None = None, format: str | None = None) -> Targets:
    """Read a target file; any bad row is an `InputError` naming the file, line and field."""
    from .io import _stream_records, container_of

    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{path}: no such target file")
    if format is not None and format not in FORMATS:
        raise OptionError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    records = list(_stream_records(p, container_of(p)).records)
    if not records:
        raise InputError(Reject(str(path), None, None, None, "no records: a target file needs at least one example"))
    fmt = format or next((f for _, r in records if (f := detect_format(r))), None)
    if fmt is None:
        line, first = records[0]
        keys = sorted(first) if isinstance(first, Mapping) else type(first).__name__
        raise InputError(
            Reject(str(path), 0, line, "instruction", f"no instruction field (fields: {keys}); pass --format")
        )
    examples: list[Example] = []
    tasks: list[str] = []
    for row, (line, record) in enumerate(records):
        try:
            messages = _parse(record, fmt)
            if task_field is not None:
                task = record.get(task_field)
                if task is None or isinstance(task, (dict, list)) or str(task) == "":
                    raise FieldError(task_field, "missing: --target-task-field names it")
                tasks.append(str(task))
            else:
                tasks.append(f"target row {row}")
        except FieldError as e:
            raise InputError(Reject(str(path), row, line, e.field, e.reason)) from None
        examples.append(Example(str(row), messages, row, line))
    return Targets(str(path), examples, tasks)
