"""Progress on stderr: a rich bar on a terminal, plain lines every few seconds elsewhere (batch jobs, nohup, CI).

Both offer the part of `rich.progress.Progress` that instructsift uses: a context manager with `add_task`,
`advance`, `update` and `tasks[i].completed / .elapsed`. The plain lines' interval is
`$INSTRUCTSIFT_PROGRESS_SECONDS` (default 10).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

DEFAULT_SECONDS = 10.0


def interval_seconds() -> float:
    """Seconds between plain progress lines: $INSTRUCTSIFT_PROGRESS_SECONDS, or 10."""
    try:
        return max(0.0, float(os.environ.get("INSTRUCTSIFT_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def progress_bar(enabled: bool, stream: TextIO | None = None) -> Any:
    """A rich progress bar when `stream` (stderr) is a terminal, else a `PlainProgress`."""
    stream = stream or sys.stderr
    if stream.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(file=stream),
            disable=not enabled,
            transient=False,
        )
    return PlainProgress(enabled, stream)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class PlainTask:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)
    first: float = 0.0  # `completed` when the task began (a resumed run starts past 0)
    last_print: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def line(self) -> str:
        done = f"{self.completed:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
        parts = [f"{self.description}: {done}" + (f" ({100 * self.completed / self.total:.0f}%)" if self.total else "")]
        elapsed = self.elapsed
        rate = (self.completed - self.first) / elapsed if elapsed > 0 else 0.0
        parts.append(str(self.fields.get("rate") or f"{rate:,.1f}/s"))
        parts.append(f"elapsed {_duration(elapsed)}")
        if self.total and rate > 0 and self.completed < self.total:
            parts.append(f"ETA {_duration((self.total - self.completed) / rate)}")
        return " · ".join(p for p in parts if p)


class PlainProgress:
    """Progress as plain lines: one when a task starts, one every `interval` seconds of work, one at the end."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, interval: float | None = None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval_seconds() if interval is None else interval
        self.tasks: list[PlainTask] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        for task in self.tasks:
            self._print(task)

    def _print(self, task: PlainTask) -> None:
        if self.enabled:
            print(task.line(), file=self.stream, flush=True)
        task.last_print = time.monotonic()

    def _tick(self, task: PlainTask) -> None:
        if time.monotonic() - task.last_print >= self.interval:
            self._print(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        task = PlainTask(description, total, completed, dict(fields), first=completed)
        self.tasks.append(task)
        self._print(task)
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self.tasks[task_id]
        task.completed += advance
        self._tick(task)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if total is not None:
            task.total = total
        task.fields.update(fields)
        self._tick(task)
