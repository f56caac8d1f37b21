"""Instruction perplexity: how surprising an example's prompt is to the model on its own.

Cherry LLM (Li et al., 2024, "From Quantity to Quality", NAACL) samples its pre-experience examples
evenly over each K-Means cluster's range of this score (`ppl_ins_alone` in its code). The column
`instruction_loss` is the log-perplexity: the mean cross-entropy of the first prompt's tokens (the
instruction in the template) after the first, with the tokenizer's start tokens before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import check_at_least
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import ModelLike, register
from .base import Advance, Chunks, ModelRuntime, Skip, chunk_for, lm_about, lm_cache_key
from .losses import AnswerLoss, Scored, batch_tokens_for


@register("score", "instruction_loss")
@dataclass
class InstructionLoss(ModelRuntime):
    """Adds `instruction_loss` (mean cross-entropy of the templated first prompt) and its `_reason`."""

    model: ModelLike = EMBEDDED
    template: str = "alpaca"
    max_length: int = 512
    columns: ClassVar[dict[str, str | None]] = {
        "instruction_loss": "instruction_loss_reason",
        "instruction_loss_reason": None,
    }
    name: str = field(default="instruction_loss", init=False)

    def __post_init__(self) -> None:
        from .templates import get_template

        check_at_least(self, max_length=2)
        self._template = get_template(self.template)

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("instruction_loss", pa.float64()), ("instruction_loss_reason", pa.string())])

    def cache_key(self) -> str:
        return lm_cache_key(self, "instruction_loss/1", template=self._template.config(), max_length=self.max_length)

    def describe(self) -> str:
        return f"{lm_about(self)}, template {self.template}, max_length {self.max_length}"

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        lm = self.load()
        chunk = chunk_for(self, lm.device)
        for lo in range(0, len(examples), chunk):
            part = [ex for ex in examples[lo : lo + chunk] if ex.content_hash not in skip]
            if part:
                losses = instruction_losses(part, lm, self._template, self.max_length, self.batch_tokens)
                rows = []
                for ex, value in zip(part, losses, strict=True):
                    ok = math.isfinite(value)
                    why = None if ok else "the prompt has a single token: nothing to score"
                    rows.append(
                        (ex.content_hash, {"instruction_loss": value if ok else None, "instruction_loss_reason": why})
                    )
                if advance:
                    advance(len(part))
                yield rows


def instruction_losses(
    examples: Sequence[Example], lm: Any, template: Any, max_length: int, batch_tokens: int | None = None
) -> list[float]:
    """Mean cross-entropy of each example's first templated prompt under the loaded model `lm` (NaN when
    the prompt has no token after the first)."""
    from .templates import start_ids, turn_texts

    tok = lm.tokenizer
    start = start_ids(tok)
    prompts = [turn_texts(ex, template, tok)[0][0] for ex in examples]
    ids = tok(prompts, add_special_tokens=False).input_ids if prompts else []
    seqs = [Scored((start + tuple(p))[:max_length], len(start)) for p in ids]
    loss = AnswerLoss.of(lm)
    out = [math.nan] * len(seqs)
    for idx, results in loss.run(seqs, batch_tokens_for(lm.device, batch_tokens)):
        for i, (total, n) in zip(idx, results, strict=True):
            out[i] = total / n if n else math.nan
    return out
