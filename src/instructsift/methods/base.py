"""What methods share: typed option groups for their `Params` models, and helpers to write their steps.

A method is a paper's recipe registered with `registry.register_method`: a pydantic `Params` model (the
options it takes, nothing else) and `steps(params)`, the recipe steps it expands to. An option a method
does not take is an error, never ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..registry import StrictModel


class Size(StrictModel):
    """How many to keep: a fraction (`ratio`) or a count (`top`). Required unless `size_optional`."""

    ratio: float | None = Field(None, description="keep this fraction")
    top: int | None = Field(None, ge=0, description="keep this many")

    size_optional: ClassVar[bool] = False  # True for methods that may decide by a threshold alone

    @field_validator("ratio")
    @classmethod
    def _share(cls, ratio: float | None) -> float | None:
        if ratio is not None and not 0 < ratio <= 1:
            raise ValueError(f"{ratio:g} is not a share between 0 and 1 (0.05 for 5%); use --top for a count")
        return ratio

    @model_validator(mode="after")
    def _one_size(self, info: ValidationInfo) -> Size:
        if self.ratio is not None and self.top is not None:
            raise ValueError("needs exactly one of --ratio or --top, not both")
        score_only = bool(info.context and info.context.get("score_only"))
        if not (self.size_optional or score_only) and self.ratio is None and self.top is None:
            raise ValueError("needs exactly one of --ratio or --top")
        return self


class LM(StrictModel):
    """A causal language model that scores (IFD, the local judge)."""

    model: str = Field("embedded", description="embedded, gemma3-270m, a hub id, a folder or a .gguf")
    template: str | None = Field(None, description="alpaca, chat, none, or a JSON template file")
    max_length: int | None = Field(None, ge=1, description="tokens per sequence")
    dtype: str = "auto"
    device: str = "auto"
    batch_tokens: int | None = Field(None, ge=1)
    chunk_size: int | None = Field(None, ge=1)
    trust_remote_code: bool = False


class Encoder(StrictModel):
    """An embedding model (diversity selectors)."""

    encoder: str = Field("embedded", description="embedded (all-MiniLM-L6-v2), a folder or hub id, lm or lm:MODEL")
    embed_text: str | None = Field(None, description="instruction, instruction+input, prompt, whole, response")
    embed_batch_size: int | None = Field(None, ge=1)


class Judge(StrictModel):
    """An LLM judge: a server (`judge_url`) or a local model."""

    judge_url: str | None = None
    judge_model: str | None = None
    judge_key_env: str | None = None
    judge_dimension: str | None = None
    judge_prompt: str | None = None
    judge_concurrency: int | None = Field(None, ge=1)
    judge_timeout: float | None = Field(None, gt=0)
    judge_retries: int | None = Field(None, ge=0)
    judge_max_tokens: int | None = Field(None, ge=1)
    judge_min_mass: float | None = Field(None, ge=0, le=1, description="local judge: least score-token mass")


LM_FIELDS = tuple(LM.model_fields)
JUDGE_FIELDS = tuple(Judge.model_fields)


def given(params: StrictModel, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among `names` that the user set (so a step's own defaults apply to the rest)."""
    return {k: getattr(params, k) for k in names if k in params.model_fields_set}


def lm_options(params: StrictModel) -> dict[str, Any]:
    """Options for a scorer that runs the LM: those set, plus the model (always named in a recipe)."""
    return {"model": params.model, **given(params, LM_FIELDS)}


def embed_options(params: Any, **defaults: Any) -> dict[str, Any]:
    """`embed` scorer options: `encoder="lm"` becomes `lm:<model>` (the model being tuned, as LTD and
    Cherry LLM embed)."""
    out = {**defaults, "encoder": params.encoder}
    if "embed_text" in params.model_fields_set:
        out["text"] = params.embed_text
    if "embed_batch_size" in params.model_fields_set:
        out["batch_size"] = params.embed_batch_size
    for key in ("dtype", "device", "trust_remote_code"):
        if key in params.model_fields_set:
            out[key] = getattr(params, key)
    if out["encoder"] == "lm":
        out["encoder"] = f"lm:{getattr(params, 'model', 'embedded')}"
    return out
