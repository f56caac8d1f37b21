"""RDS+: the pool rows most similar to examples of the tasks the user cares about (`--target`).

Ivison et al., 2025, "Large-Scale Data Selection for Instruction Tuning" (arXiv 2503.01807): pool rows and
target rows are embedded as the position-weighted mean of the base model's last hidden states (the
`representation` scorer, Tulu format), and tasks take turns picking their most similar unpicked pool rows
(the `rds` selector, max over a task's targets). `--whiten` is CRDS-W (Shu et al., 2026, arXiv 2602.13773):
whitening with the pool's mean and covariance first. See docs/rds.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..data.errors import OptionError, Placeholder
from ..models.embedded import EMBEDDED
from ..registry import ModelRef, OptionalDataRef, method, step
from .base import Runtime, Size, given

REP_FIELDS = ("template", "layer", "layers", "project", "seed", "max_length", "dtype", "device", "batch_tokens",
              "trust_remote_code")  # fmt: skip


class Params(Size, Runtime):
    target: OptionalDataRef = Field(None, description="examples of the target tasks (any format; answers optional)")
    target_task_field: str | None = Field(None, description="the target records' task field [each row a task]")
    target_text: str = Field("prompt", description="what a target encodes: prompt (instruction) or whole")
    aggregate: str = Field("max", description="a task's score for a row: max (the paper's) or mean over its targets")
    whiten: bool = Field(False, description="whiten with the pool's mean and covariance first (CRDS-W)")
    model: ModelRef = Field(EMBEDDED, description="the base model whose hidden states embed (the paper: the one tuned)")
    template: str | None = Field(None, description="tulu (the paper's) or chat")
    layer: int | None = Field(None, description="hidden state used: -1 the last [-1]")
    layers: list[int] | None = Field(None, description="several hidden states, concatenated (CRDS-R): -4,-3,-2,-1")
    project: int | None = Field(None, ge=1, description="Rademacher projection to this many dimensions (CRDS-R)")
    seed: int | None = Field(None, description="--project's seed [0]")
    max_length: int | None = Field(None, ge=1, description="tokens per example [2048]")

    @field_validator("layers", mode="before")
    @classmethod
    def _layers(cls, v: Any) -> Any:
        if isinstance(v, str):  # the command line's -4,-3,-2,-1
            try:
                return [int(x) for x in v.split(",") if x.strip()]
            except ValueError:
                raise OptionError(
                    "{layers}: hidden states as whole numbers, comma-separated (-4,-3,-2,-1)", layers=v
                ) from None
        return v

    @model_validator(mode="after")
    def _needs_target(self, info: ValidationInfo) -> Params:
        score_only = bool(info.context and info.context.get("score_only"))
        if self.target is None and not score_only:
            raise OptionError("needs {target}: examples of the tasks to select for", target=Placeholder("FILE"))
        if self.target_task_field is not None and self.target is None:
            raise OptionError("{target_task_field} needs {target}", "target_task_field", "target")
        if self.layers is not None and self.layer is not None:
            raise OptionError("give {layer} (one hidden state) or {layers} (several), not both", "layer", "layers")
        if self.seed is not None and self.project is None:
            raise OptionError("{seed} is {project}'s seed: give {project} too", "seed", "project")
        return self


@method(
    paper="Ivison et al., 2025, Large-Scale Data Selection for Instruction Tuning (RDS+), arXiv 2503.01807",
    summary="the rows most similar to --target examples (base-model hidden states), round-robin over tasks",
    defaults={
        "model": "embedded (the paper: the base model being tuned)",
        "representation": "position-weighted mean of the last hidden states, Tulu format, unit length",
        "pool text": "whole (instruction and answer)",
        "target text": "prompt (instruction only; --target-text whole to add answers, as the paper)",
        "aggregate": "max over a task's targets; round-robin over tasks",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    rep = {"model": p.model, **given(p, REP_FIELDS)}
    out = []
    if p.target is not None:  # first: a bad target file fails before the pool is encoded
        fit = step("fit", "targets", target=p.target, target_task_field=p.target_task_field,
                   target_text=p.target_text, **rep)  # fmt: skip
        out.append({"fit": "targets", "as": "targets", "with": fit["with"]})
    out.append(step("score", "representation", text="whole", **rep, **given(p, ("chunk_size",))))
    if p.ratio is not None or p.top is not None:
        out.append(step("select", "rds", targets="@targets", column="representation", ratio=p.ratio, k=p.top,
                        of="all", aggregate=p.aggregate, whiten=p.whiten or None))  # fmt: skip
    return out
