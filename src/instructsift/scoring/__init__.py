"""Scorers: they look at examples and add named columns; they never decide."""

from .dedup import MinHashSignature
from .embed import Embed
from .ifd import IFD
from .language import Language
from .rules import Rules

__all__ = ["IFD", "Embed", "Language", "MinHashSignature", "Rules"]
