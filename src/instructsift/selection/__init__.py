"""Selectors: they look only at score columns and decide which rows to keep."""

from .base import Selection, Selector, select
from .dedup import Dedup
from .rules import KeepLanguage, RuleFilter
from .stratified import Stratified
from .threshold import Threshold, parse_where
from .top import Top

__all__ = [
    "Dedup",
    "KeepLanguage",
    "RuleFilter",
    "Selection",
    "Selector",
    "Stratified",
    "Threshold",
    "Top",
    "parse_where",
    "select",
]
