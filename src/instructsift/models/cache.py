"""The one root of every instructsift cache (scores, models, fingerprints, fitted artifacts, experiments)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

_ROOTS: list[Path] = []  # set by `use_cache_root`, innermost last


def cache_root() -> Path:
    """The one root of every instructsift cache (scores, models, fingerprints, pre-experience): the folder
    given to `use_cache_root` (the CLI's --cache-dir), else `$INSTRUCTSIFT_CACHE`, else ~/.cache/instructsift."""
    if _ROOTS:
        return _ROOTS[-1]
    return Path(os.environ.get("INSTRUCTSIFT_CACHE") or Path.home() / ".cache" / "instructsift")


def models_root() -> Path:
    """Where converted models go (GGUF files dequantized, merged adapters, unpacked encoders): `models/` under
    the cache root, or `$INSTRUCTSIFT_MODELS` where set. Converted models depend only on their source files,
    so one folder can serve several cache roots (several projects, a cluster's shared disk, a test run)."""
    return Path(os.environ.get("INSTRUCTSIFT_MODELS") or cache_root() / "models")


def set_cache_root(path: str | os.PathLike) -> None:
    """Set the cache root for the rest of the process (a Ray worker takes its driver's root this way)."""
    _ROOTS[:] = [Path(path)]


@contextlib.contextmanager
def use_cache_root(path: str | os.PathLike | None) -> Iterator[Path]:
    """Send every cache under `path` while the block runs (None: leave the root as it is)."""
    if path is None:
        yield cache_root()
        return
    _ROOTS.append(Path(path))
    try:
        yield _ROOTS[-1]
    finally:
        _ROOTS.pop()
