"""The AlpaGasus LLM judge: rate each (instruction, input, response) 0-5 and keep the best.

Chen et al., 2024, "AlpaGasus: Training a Better Alpaca with Fewer Data", ICLR: ChatGPT rates every
Alpaca example for accuracy on a 0-5 scale and training keeps the 9k examples scoring at least 4.5.

Two back ends add the same columns:
  - `ServerJudge` (scoring/judge_client.py): any OpenAI-compatible server (vLLM, llama.cpp server,
    `transformers serve`, OpenAI); async, bounded concurrency, retries with exponential backoff.
  - `LocalJudge` (scoring/judge_local.py): a local Hugging Face causal LM (the embedded SmolLM2 by
    default); the expected score from the next-token probabilities of the score tokens.

Columns: `judge` (the score, None when missing), `judge_raw` (the reply text, or the score-token
probabilities for the local back end), `judge_reason` (why `judge` is missing), `judge_source`
(`logprobs`, `reply` or `next-token`), `judge_mass` (probability mass on the score tokens),
`judge_attempts` (HTTP attempts) and `judge_truncated` (the response was cut to fit the local model).
"""

from __future__ import annotations

from typing import Any

from ..data.errors import OptionError, options_named
from ..models.embedded import EMBEDDED
from ..registry import ModelLike, OptionalFilePath, register
from .judge_columns import COLUMN_REASONS, COLUMNS, judge_row, judge_schema

JUDGE_OPTIONS = (
    "judge_url",
    "judge_model",
    "judge_key_env",
    "judge_dimension",
    "judge_prompt",
    "judge_concurrency",
    "judge_timeout",
    "judge_retries",
    "judge_max_tokens",
    "judge_min_mass",
    "model",
    "dtype",
    "device",
    "max_length",
    "batch_tokens",
    "chunk_size",
    "trust_remote_code",
)


# the fields of `ServerJudge` and `LocalJudge` that this scorer takes as options of other names: an error
# of either class names the option the user gave (`judge_concurrency=`, `--judge-concurrency`)
FIELDS = {
    "url": "judge_url",
    "key_env": "judge_key_env",
    "dimension": "judge_dimension",
    "prompt": "judge_prompt",
    "concurrency": "judge_concurrency",
    "timeout": "judge_timeout",
    "retries": "judge_retries",
    "max_tokens": "judge_max_tokens",
    "min_mass": "judge_min_mass",
}


@register("score", "judge")
def Judge(
    judge_url: str | None = None,
    judge_model: str | None = None,
    judge_key_env: str | None = None,
    judge_dimension: str = "accuracy",
    judge_prompt: OptionalFilePath = None,
    judge_concurrency: int | None = None,
    judge_timeout: float | None = None,
    judge_retries: int | None = None,
    judge_max_tokens: int | None = None,
    judge_min_mass: float | None = None,
    model: ModelLike = EMBEDDED,
    dtype: str = "auto",
    device: str = "auto",
    max_length: int | None = None,
    batch_tokens: int | None = None,
    chunk_size: int | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """The judge the options ask for: a server judge when `judge_url` is set, else a local model
    (`judge_model`, or `model`: the embedded SmolLM2 by default). `judge_min_mass` is the local judge's
    `min_mass` (a score is missing when less probability than that is on the score tokens)."""
    if judge_url:
        from .judge_client import ServerJudge

        if not judge_model:
            raise OptionError(
                "{judge_url} needs {judge_model}: the model name the server serves", "judge_url", "judge_model"
            )
        if judge_min_mass is not None:
            raise OptionError(
                "{judge_min_mass} applies to the local judge (next-token probabilities): drop {judge_url}",
                *("judge_min_mass", "judge_url"),
            )
        server: dict[str, Any] = {
            "url": judge_url,
            "model": judge_model,
            "key_env": judge_key_env,
            "dimension": judge_dimension,
            "prompt": judge_prompt,
            "concurrency": judge_concurrency,
            "timeout": judge_timeout,
            "retries": judge_retries,
            "max_tokens": judge_max_tokens,
            "chunk_size": chunk_size,
        }
        with options_named(FIELDS):  # the class checks its fields; the user reads the options they gave
            return ServerJudge(**{k: v for k, v in server.items() if v is not None})
    given = {
        "judge_key_env": judge_key_env,
        "judge_concurrency": judge_concurrency,
        "judge_timeout": judge_timeout,
        "judge_retries": judge_retries,
        "judge_max_tokens": judge_max_tokens,
    }
    stray = [k for k, v in given.items() if v is not None]
    if stray:
        named = ", ".join("{" + k + "}" for k in stray)
        raise OptionError(f"{named} only apply to a judge server: add {{judge_url}}", *stray, "judge_url")
    from .judge_local import LocalJudge

    with options_named(FIELDS):
        return LocalJudge(
            model=judge_model or model,
            dimension=judge_dimension,
            prompt=judge_prompt,
            dtype=dtype,
            device=device,
            max_length=max_length or 2048,
            batch_tokens=batch_tokens,
            chunk_size=chunk_size,
            trust_remote_code=trust_remote_code,
            **({} if judge_min_mass is None else {"min_mass": judge_min_mass}),
        )


Judge.columns = COLUMN_REASONS  # type: ignore[attr-defined]  # the declaration both back ends share


__all__ = ["COLUMNS", "COLUMN_REASONS", "JUDGE_OPTIONS", "Judge", "judge_row", "judge_schema"]
