"""Scorers: they look at examples and add named columns; they never decide."""

from .dedup import MinHashSignature
from .ifd import IFD
from .language import Language
from .rules import Rules

__all__ = ["IFD", "Language", "MinHashSignature", "Rules"]
