"""Cherry LLM's phase (1) run alone: the pre-experienced model's steps (`methods.cherry.PreExperience`) run as
a pipeline on a data set, without scoring IFD after them (Li et al., NAACL 2024, section 2.1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..methods.cherry import MODEL_NAME, PreExperience
from ..models.embedded import EMBEDDED


@dataclass
class PreExperienceResult:
    model: str  # the pre-experienced model folder
    sample: list[str]  # ids of the examples it was fine-tuned on
    clusters: int
    per_cluster: int


def pre_experience(
    dataset: Any,
    model: str = EMBEDDED,
    settings: PreExperience | None = None,
    *,
    cache_dir: Any = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PreExperienceResult:
    """Phase 1 of Cherry LLM on `dataset`: sample by K-Means over instruction embeddings, then fine-tune
    `model` on the sample (the same steps as `cherry --pre-experience`). Returns the model to score IFD with."""
    from ..models import use_cache_root
    from ..pipeline import StepRunner, build_selector  # here: the registry imports this module at start-up
    from ..recipe import from_dict

    settings = settings or PreExperience()
    settings.sizes(len(dataset.examples))  # a clear error for too small a data set
    data = {"input": dataset.path, "steps": settings.steps(model)}
    if cache_dir is not None:
        data["cache_dir"] = str(cache_dir)
    recipe = from_dict(data, source="pre-experience")
    runner = StepRunner(dataset, recipe, progress=progress, log=log or (lambda _m: None), engine_options={})
    selectors = {id(s): build_selector(s) for st in recipe.steps for s in st.on}
    with use_cache_root(recipe.path("cache_dir")):  # the root its fit steps' artifacts go under
        for st in recipe.steps:
            runner.run(st, selectors)
    fitted = runner.fitted[MODEL_NAME]
    sampler = selectors[id(recipe.steps[-1].on[0])]
    return PreExperienceResult(
        fitted["product"], [dataset.examples[i].id for i in fitted["rows"]], sampler.n_clusters_, sampler.per_cluster_
    )
