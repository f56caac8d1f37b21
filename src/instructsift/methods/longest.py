"""The longest answers: the length baseline that selection methods must beat.

Zhao et al., ICML 2024, "Long Is More for Alignment: A Simple but Tough-to-Beat Baseline for Instruction
Fine-Tuning" (arXiv 2402.04833): the 1,000 examples with the longest responses beat AlpaGasus-1k and
LIMA-1k under GPT-4 and PaLM-2 judges. Rows are ranked by answer length, longest first: tokens of
`--model`'s tokenizer (no special tokens; a multi-turn example counts the sum of its answers), or
characters when no `--model` is given; `--ratio` is a share of all rows. Ties go to the earlier row.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import OptionalModelRef, method, step
from .base import Size


class Params(Size):
    model: OptionalModelRef = Field(
        None, description="whose tokenizer counts answer tokens (characters when not given)"
    )
    trust_remote_code: bool = Field(False, description="allow a hub model's own code to run")


@method(
    paper="Zhao et al., ICML 2024, Long Is More for Alignment",
    summary="the longest answers (tokens of --model's tokenizer, else characters); the ratio is of all rows",
    defaults={"rank": "output_tokens with --model, else output_chars"},
)
def steps(p: Params) -> list[dict[str, Any]]:
    tokens = p.model is not None
    return [
        step("score", "lengths", model=p.model, tokens=tokens, trust_remote_code=p.trust_remote_code or None),
        step("select", "top", column="output_tokens" if tokens else "output_chars", ratio=p.ratio, k=p.top, of="all"),
    ]
