"""The `instructsift` command: a small package. `core` holds the app and its error guard, `options` the
options several commands share, `method_options` the method options of `score` and `select` (generated
from the registry), and one module per group of commands registers them on `app`."""

from __future__ import annotations

import sys

# isort: off
from . import data_cmds, report_cmd, train_cmds, experiments  # noqa: F401  (they register the commands, in this order)

# isort: on
from .core import _guard, app

__all__ = ["_guard", "app", "main"]


def main() -> None:  # pragma: no cover
    sys.exit(app())
