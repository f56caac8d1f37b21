"""Target files for target-aware selection (`--target`): examples of the tasks the user cares about.

Read by `data.read` like any data (any container and record format, a hub id or hub-layout folder with its
split spelled `ID[@REVISION][:SUBSET]:SPLIT`), with the answer optional: a target row needs an instruction,
not an answer (an Alpaca row without `output`, a conversation without an assistant turn). `task_field`
names the record field that groups rows into tasks; without it every row is its own task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, MissingFileError, Reject
from .example import Example


@dataclass
class Targets:
    path: str
    examples: list[Example]
    tasks: list[str]  # one label per example


def read_targets(
    path: str | Path,
    *,
    task_field: str | None = None,
    format: str | None = None,
    fields: Mapping[str, str] | None = None,
    split: str | None = None,
    subset: str | None = None,
    revision: str | None = None,
) -> Targets:
    """Read target examples (a file, folder or hub data set); any bad row is an `InputError` naming the
    file, line and field."""
    from .hub import local_part
    from .io import read

    local = local_part(path)
    if local is not None and not local.exists():
        raise MissingFileError(f"{path}: no such target file")
    data = read(
        path, format=format, fields=fields, allow_empty=True, answer_optional=True,
        split=split, subset=subset, revision=revision,
    )  # fmt: skip
    if not data.examples:
        raise InputError(Reject(data.path, None, None, None, "no records: a target file needs at least one example"))
    examples: list[Example] = []
    tasks: list[str] = []
    for ex in data.examples:
        if task_field is not None:
            task = ex.record.get(task_field)
            if task is None or isinstance(task, (dict, list)) or str(task) == "":
                why = "missing: {target_task_field} names it"
                raise InputError(Reject(data.path, ex.row, ex.line, task_field, why), "target_task_field")
            tasks.append(str(task))
        else:
            tasks.append(f"target row {ex.row}")
        examples.append(Example(str(ex.row), ex.messages, ex.row, ex.line))
    return Targets(data.path, examples, tasks)
