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

_EXPORTS = {
    "read": "instructsift.api",
    "write": "instructsift.api",
    "score": "instructsift.api",
    "select": "instructsift.api",
    "read_scores": "instructsift.api",
    "write_scores": "instructsift.api",
    "Picked": "instructsift.api",
    "IFD": "instructsift.scoring.ifd",
    "ServerJudge": "instructsift.scoring.judge_client",
    "LocalJudge": "instructsift.scoring.judge_local",
    "Threshold": "instructsift.selection.threshold",
    "Top": "instructsift.selection.top",
    "Rules": "instructsift.scoring.rules",
    "Language": "instructsift.scoring.language",
    "MinHashSignature": "instructsift.scoring.dedup",
    "RuleFilter": "instructsift.selection.rules",
    "KeepLanguage": "instructsift.selection.rules",
    "Dedup": "instructsift.selection.dedup",
    "ExactDedup": "instructsift.selection.dedup",
    "Stratified": "instructsift.selection.stratified",
    "Embed": "instructsift.scoring.embed",
    "KCenter": "instructsift.selection.kcenter",
    "KMeansSample": "instructsift.selection.cluster",
    "FacilityLocation": "instructsift.selection.facility",
    "DiverseTop": "instructsift.selection.diverse",
    "finetune": "instructsift.train.finetune",
    "FinetuneConfig": "instructsift.train.finetune",
    "evaluate": "instructsift.train.evaluate",
    "pre_experience": "instructsift.train.pre_experience",
    "PreExperience": "instructsift.train.pre_experience",
    "METHODS": "instructsift.methods",
    "get_method": "instructsift.methods",
    "Example": "instructsift.data.example",
    "Message": "instructsift.data.example",
    "InputError": "instructsift.data.errors",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'instructsift' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
