"""The helpers every scorer and sized selector shares: a scorer's cache key from its configuration (a
change here would orphan every cache), and a sized selector's options checked when it is built."""

from __future__ import annotations

import pytest

from instructsift import registry
from instructsift.data.errors import OptionError
from instructsift.scoring.base import config_hash, lm_config


def test_config_hash_is_the_cache_key_format():
    # pinned: sorted JSON, SHA-256, 16 hex digits (the keys of every cache written so far)
    assert config_hash({"scorer": "ifd/1", "max_length": 512, "template": None}) == "e9c2f3e2b1c386c7"
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})


def test_lm_config_names_weights_dtype_and_device_kind():
    class Source:
        fingerprint = "tiny:abc"

    class LM:
        source, dtype, device = Source(), "torch.float32", "cuda:1"

    assert lm_config(LM()) == {"model": "tiny:abc", "dtype": "torch.float32", "device": "cuda"}


SIZED = {  # selector -> options it needs besides its size
    "top": {"column": "ifd"},
    "random": {},
    "kcenter": {},
    "facility_location": {},
    "diverse_top": {"score": "ifd"},
    "instructmining": {"rule": "paper"},
}


@pytest.mark.parametrize("name", sorted(SIZED))
def test_a_sized_selector_checks_of_and_its_size_when_built(name):
    target = registry.get("select", name).target
    with pytest.raises(OptionError, match="of must be 'kept' or 'all', got 'some'"):
        target(**SIZED[name], k=3, of="some")
    with pytest.raises(OptionError, match="needs exactly one of ratio= or k=, not both"):
        target(**SIZED[name], k=3, ratio=0.5)
    target(**SIZED[name], k=3, of="all")
