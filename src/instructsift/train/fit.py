"""The `finetune` fit step: a recipe step that fine-tunes a model on the rows its `on:` selectors keep and
hands the tuned model to later steps (`model: "@NAME"`). Cherry LLM's pre-experienced model is one.

The product is cached under `<cache>/artifacts/finetune-<key>/model`, keyed by the training rows' content
(in order), the base model's fingerprint and every setting that changes the weights; a rerun reuses it,
and an interrupted fine-tuning resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import create_model

from ..models.embedded import EMBEDDED
from ..registry import ModelRef, StrictModel, params_of, register
from . import under_cache_dir
from .finetune import FinetuneConfig

# Settings that do not change the weights.
NOT_IN_KEY = ("device", "checkpoint_steps")

FinetuneParams = create_model(
    "FinetuneParams",
    __base__=StrictModel,
    model=(ModelRef, EMBEDDED),
    **{name: (f.annotation, f) for name, f in params_of(FinetuneConfig).model_fields.items()},
)


def artifact_key(kind: str, rows: list[str], base_fingerprint: str, settings: dict[str, Any]) -> str:
    h = hashlib.sha256(
        json.dumps({"kind": kind, "base": base_fingerprint, **settings}, sort_keys=True, default=str).encode()
    )
    for r in rows:
        h.update(r.encode())
    return h.hexdigest()[:16]


@register("fit", "finetune", params=FinetuneParams)
@under_cache_dir
def fit_finetune(
    dataset: Any, params: Any, *, cache_dir: Any = None, progress: bool = True, log: Callable | None = None
) -> str:
    """Fine-tune `params.model` on `dataset`'s examples (LoRA unless `lora: false`); returns the folder."""
    from ..models import cache_root, resolve
    from .finetune import finetune

    log = log or (lambda _m: None)
    options = params.model_dump(exclude={"model"})
    config = FinetuneConfig(**options)
    if not dataset.examples:
        raise ValueError("finetune: no rows to train on")
    base = resolve(params.model)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_IN_KEY}
    key = artifact_key("finetune", [ex.content_hash for ex in dataset.examples], base.fingerprint, settings)
    root = cache_root()  # `cache_dir`, where given (`under_cache_dir`)
    folder = root / "artifacts" / f"finetune-{key}" / "model"
    if (folder / "config.json").exists():
        log(f"fine-tuned model on {len(dataset.examples)} rows: cached ({folder})")
        return str(folder)
    finetune(dataset.examples, params.model, folder, config, progress=progress)
    log(f"fine-tuned model on {len(dataset.examples)} rows: ran ({folder})")
    return str(folder)
