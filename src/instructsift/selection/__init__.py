"""Selectors: they look only at score columns and decide which rows to keep."""

from .base import Selection, Selector, select
from .cluster import KMeansSample, kmeans_sample
from .dedup import Dedup, ExactDedup
from .diverse import DiverseTop
from .facility import FacilityLocation
from .kcenter import KCenter, kcenter_greedy
from .rules import KeepLanguage, RuleFilter
from .sample import RandomSample, random_subset
from .stratified import Stratified
from .threshold import Threshold, parse_where
from .top import Top

__all__ = [
    "Dedup",
    "DiverseTop",
    "ExactDedup",
    "FacilityLocation",
    "KCenter",
    "KMeansSample",
    "KeepLanguage",
    "RandomSample",
    "RuleFilter",
    "Selection",
    "Selector",
    "Stratified",
    "Threshold",
    "Top",
    "kcenter_greedy",
    "kmeans_sample",
    "parse_where",
    "random_subset",
    "select",
]
