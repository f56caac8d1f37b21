"""AlpaGasus: an LLM judge rates every example 0-5; keep those rated at least 4.5.

Chen et al., 2024, "AlpaGasus: Training a Better Alpaca with Fewer Data", ICLR. ChatGPT rated each
Alpaca (instruction, input, response) for accuracy on a 0-5 scale; the 9k examples above the threshold
4.5 trained a better model than all 52k. The paper says "above 4.5"; its code (`rating/filter.py`)
keeps scores >= the threshold, and so does this recipe: `judge >= 4.5`. A threshold alone is the
paper's recipe; `--ratio`/`--top` additionally keep the best of what passes. Rows the judge could not
rate (no reply, no number in it) are dropped with the judge's reason.

The judge is a server (`--judge-url`, `--judge-model`: vLLM, llama.cpp, `transformers serve`, OpenAI)
or, without a URL, a local model (`--model`, the embedded SmolLM2 by default) whose expected score
comes from its next-token probabilities. A rating is missing when the model puts less than
`judge_min_mass` (a half) of its probability on the score tokens: it was not answering with a score.
The embedded model puts about 1% there, so its ratings are missing unless that is lowered knowingly;
a small model's scores also sit on its own scale (pick `--threshold` or `--ratio` for it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..data.errors import OptionError
from ..registry import method, step
from .base import JUDGE_FIELDS, LM, LM_FIELDS, Judge, Size, given

THRESHOLD = 4.5


class Params(Size, LM, Judge):
    size_optional: ClassVar[bool] = True
    threshold: float = Field(THRESHOLD, description="keep judge >= this")


def judge_step(p: Any) -> dict[str, Any]:
    """The `judge` scorer with the options set (a server judge takes none of the local model's)."""
    local = tuple(k for k in LM_FIELDS if k != "template")
    if "template" in p.model_fields_set:
        raise OptionError(
            "the judge has its own prompt: {template} does not apply (use {judge_prompt})", "template", "judge_prompt"
        )
    return step("score", "judge", **given(p, JUDGE_FIELDS), **given(p, local))


@method(
    paper="Chen et al., ICLR 2024, AlpaGasus: Training a Better Alpaca with Fewer Data",
    summary="an LLM judge rates each (instruction, input, response) 0-5 for accuracy; keep judge >= 4.5",
    ratio_of="the rows with judge >= the threshold",
    defaults={
        "judge": "--judge-url server, or the local model (expected score)",
        "dimension": "accuracy",
        "keep": f"judge >= {THRESHOLD}",
        "rank": "judge (with --ratio/--top)",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    out = [judge_step(p), step("select", "threshold", where=f"judge >= {float(p.threshold)!r}")]
    if p.ratio is not None or p.top is not None:
        out.append(step("select", "top", column="judge", ratio=p.ratio, k=p.top, of="kept"))
    return out
