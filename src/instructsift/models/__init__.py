"""Where weights come from, and on which device and dtype they run."""

from .cache import cache_root, models_root, set_cache_root, use_cache_root
from .device import choose_device, choose_dtype
from .loader import (
    LoadedModel,
    ModelSource,
    hf_bars_off,
    load_causal_lm,
    load_pretrained,
    resolve,
    resolve_encoder,
    resolve_tokenizer,
)

__all__ = [
    "LoadedModel",
    "ModelSource",
    "cache_root",
    "choose_device",
    "choose_dtype",
    "hf_bars_off",
    "load_causal_lm",
    "load_pretrained",
    "models_root",
    "resolve",
    "resolve_encoder",
    "resolve_tokenizer",
    "set_cache_root",
    "use_cache_root",
]
