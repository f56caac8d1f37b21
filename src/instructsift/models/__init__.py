"""Where weights come from, and on which device and dtype they run."""

from .device import choose_device, choose_dtype
from .loader import (
    LoadedModel,
    ModelSource,
    cache_root,
    load_causal_lm,
    load_pretrained,
    models_root,
    resolve,
    set_cache_root,
    use_cache_root,
)

__all__ = [
    "LoadedModel",
    "ModelSource",
    "cache_root",
    "choose_device",
    "choose_dtype",
    "load_causal_lm",
    "load_pretrained",
    "models_root",
    "resolve",
    "set_cache_root",
    "use_cache_root",
]
