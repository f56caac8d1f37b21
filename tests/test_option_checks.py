"""The shared option checks: `check_at_least` (scorers, selectors, trainers) and compare's `one_or_list`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from instructsift.data.errors import OptionError, check_at_least
from instructsift.experiments.compare_spec import one_or_list


@dataclass
class Settings:
    max_length: int = 2
    clusters: int | None = None


def test_check_at_least_names_the_first_setting_below_its_bound() -> None:
    check_at_least(Settings(), max_length=2, clusters=1)  # None: not set, not checked
    with pytest.raises(OptionError, match=r"^max_length must be at least 2, got 1$"):
        check_at_least(Settings(max_length=1, clusters=0), max_length=2, clusters=1)
    with pytest.raises(OptionError, match=r"^clusters must be at least 1, got 0$"):
        check_at_least(Settings(clusters=0), max_length=2, clusters=1)


def test_one_or_list() -> None:
    assert one_or_list("a", "empty", "twice") == "a" and one_or_list(["a"], "empty", "twice") == "a"
    assert one_or_list([1, 2], "empty", "twice") == [1, 2]
    with pytest.raises(ValueError, match="^empty$"):
        one_or_list([], "empty", "twice")
    with pytest.raises(ValueError, match=r"^twice: \[1, 1\]$"):
        one_or_list([1, 1], "empty", "twice")
