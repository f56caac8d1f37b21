"""Engines run recipes: `local` in-process with progress bars and a cache."""

from .local import score

__all__ = ["score"]
