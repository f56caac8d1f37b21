"""The `instructsift` command: a small package. `core` holds the app and its error guard, `options` the
options several commands share, `method_options` the method options of `score` and `select` (generated
from the registry), and one module per group of commands registers them on `app`."""

from __future__ import annotations

import sys

from . import data_cmds, experiments, report_cmd, train_cmds  # noqa: F401  (register the commands, in order)
from .core import _guard, app

__all__ = ["_guard", "app", "main"]


def main() -> None:  # pragma: no cover
    sys.exit(app())
