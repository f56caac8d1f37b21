"""instructsift: pick the instruction-tuning examples worth fine-tuning on.

    import instructsift as isf
    ds = isf.read("data.jsonl")
    scores = isf.score(ds, [isf.IFD(model="embedded")])
    picked = isf.select(ds, scores, isf.Threshold("ifd <= 1"), isf.Top("ifd", ratio=0.1))
    isf.write(picked, "selected.jsonl")

Heavy libraries (torch, transformers) load only when a model is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Functions and types that are not registered steps. Every registered scorer, selector and fit step is
# also here under its Python name (`isf.IFD`, `isf.Top`, `isf.KCenter`), found through the registry.
_EXPORTS = {
    "read": "instructsift.api",
    "write": "instructsift.api",
    "score": "instructsift.api",
    "select": "instructsift.api",
    "read_scores": "instructsift.api",
    "write_scores": "instructsift.api",
    "Picked": "instructsift.api",
    "run": "instructsift.pipeline",
    "RunResult": "instructsift.pipeline",
    "Recipe": "instructsift.recipe",
    "load_recipe": "instructsift.recipe",
    "recipe_from_method": "instructsift.recipe",
    "registry": "instructsift",
    "kmeans_sample": "instructsift.selection.cluster",
    "kcenter_greedy": "instructsift.selection.kcenter",
    "check_outputs": "instructsift.outputs",
    "Output": "instructsift.outputs",
    "UserError": "instructsift.data.errors",
    "use_cache_root": "instructsift.models",
    "ExactDedup": "instructsift.selection.dedup",
    "finetune": "instructsift.train.finetune",
    "FinetuneConfig": "instructsift.train.finetune",
    "evaluate": "instructsift.train.evaluate",
    "pre_experience": "instructsift.experiments.pre_experience",
    "PreExperience": "instructsift.methods.cherry",
    "get_method": "instructsift.methods",
    "ServerJudge": "instructsift.scoring.judge_client",
    "LocalJudge": "instructsift.scoring.judge_local",
    "Example": "instructsift.data.example",
    "Message": "instructsift.data.example",
    "InputError": "instructsift.data.errors",
    "UsageError": "instructsift.errors",
}
_RENAMED = {"load_recipe": "load", "recipe_from_method": "from_method"}


def _steps() -> dict[str, Any]:
    from . import registry

    return {
        e.target.__name__: e.target
        for kind in ("score", "select", "fit")
        for e in registry.entries(kind)
        if hasattr(e.target, "__name__")
    }


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        if name == "registry":
            return importlib.import_module("instructsift.registry")
        return getattr(importlib.import_module(_EXPORTS[name]), _RENAMED.get(name, name))
    if name[:1].isupper() or name.startswith("fit_"):
        steps = _steps()
        if name in steps:
            return steps[name]
    raise AttributeError(f"module 'instructsift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*_EXPORTS, *_steps()})


__all__ = sorted(_EXPORTS)  # the registered steps are added by `__dir__`
