"""Scorers: they look at examples and add named columns; they never decide."""

from .ifd import IFD

__all__ = ["IFD"]
