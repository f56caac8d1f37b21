"""Selectors: they look only at score columns and decide which rows to keep."""

from .base import Selection, Selector, select
from .threshold import Threshold, parse_where
from .top import Top

__all__ = ["Selection", "Selector", "Threshold", "Top", "parse_where", "select"]
