"""Mean answer loss of a model on a held-out set: InstructMining's quality proxy.

InstructMining (Cao et al., 2023, "Instruction Mining: Instruction Data Selection for Tuning Large
Language Models") judges a fine-tuned model by its loss on held-out instruction data. The sequences are
exactly the training sequences of `train.finetune` (same template, S start tokens, prompt and answer
tokenized separately, EOS after each answer); each answer is scored conditioned on everything before it
with the batched `AnswerLoss` of the scorers, so the numbers equal the training loss on that data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.errors import EmptyResultError
from ..data.example import Example
from ..models.embedded import EMBEDDED


@dataclass
class EvalResult:
    """`loss`: answer-token cross-entropy averaged over all answer tokens of the set (the usual eval
    loss); `example_loss`: the mean of the per-example means. `per_example[i]` is None for a skipped one;
    `per_example_tokens[i]` is the number of answer tokens it was scored on."""

    model: str
    loss: float
    ppl: float
    example_loss: float
    examples: int
    scored: int
    tokens: int
    per_example: list[float | None] = field(repr=False)
    per_example_tokens: list[int] = field(default_factory=list, repr=False)  # answer tokens scored per example
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (example id, reason)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "loss": self.loss,
            "ppl": self.ppl,
            "example_loss": self.example_loss,
            "examples": self.examples,
            "scored": self.scored,
            "tokens": self.tokens,
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
            "seconds": self.seconds,
            **self.settings,
        }


def evaluate(
    data: Sequence[Example] | Any,
    model: str | Any = EMBEDDED,
    *,
    template: str = "alpaca",
    max_length: int = 512,
    eos: bool = True,
    dtype: str = "auto",
    device: str = "auto",
    batch_tokens: int | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
) -> EvalResult:
    """Mean answer loss of `model` (a `models.loader.resolve` spec, or a loaded `LoadedModel`) on `data`."""
    from ..models import LoadedModel, load_causal_lm
    from ..progress import progress_bar as _progress
    from ..scoring.losses import AnswerLoss, Scored, batch_tokens_for
    from .finetune import build_sequences

    examples = list(getattr(data, "examples", data))
    t0 = time.monotonic()
    lm = (
        model
        if isinstance(model, LoadedModel)
        else load_causal_lm(model, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    )
    tok = lm.tokenizer
    scorer = AnswerLoss.of(lm)
    built = build_sequences(examples, template, tok, max_length, eos)
    seqs: list[Scored] = []
    owner: list[int] = []
    for e, b in enumerate(built):
        for s in b.sequences:
            for a, end in s.spans:  # causal: the answer's loss needs only the tokens up to its end
                seqs.append(Scored(s.ids[:end], a))
                owner.append(e)
    sums = [0.0] * len(examples)
    counts = [0] * len(examples)
    budget = batch_tokens_for(lm.device, batch_tokens)
    with _progress(progress and bool(seqs)) as bar:
        task = bar.add_task("evaluate", total=len(seqs), rate="")
        for idx, out in scorer.run(seqs, budget):
            for i, (loss_sum, n) in zip(idx, out, strict=True):
                sums[owner[i]] += loss_sum
                counts[owner[i]] += n
            bar.advance(task, len(idx))
    per_example = [s / n if n else None for s, n in zip(sums, counts, strict=True)]
    scored = [x for x in per_example if x is not None]
    tokens = sum(counts)
    skipped = [(ex.id, b.reason or "") for ex, b in zip(examples, built, strict=True) if not b.sequences]
    if not tokens:  # no loss to report: an error, never a NaN
        why = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise EmptyResultError(f"none of the {len(examples)} examples has an answer token to score{why}")
    loss = sum(sums) / tokens
    return EvalResult(
        model=lm.source.name,
        loss=loss,
        ppl=math.exp(loss),
        example_loss=sum(scored) / len(scored),
        examples=len(examples),
        scored=len(scored),
        tokens=tokens,
        per_example=per_example,
        per_example_tokens=counts,
        skipped=skipped,
        seconds=time.monotonic() - t0,
        settings={
            "template": template,
            "max_length": max_length,
            "eos": eos,
            "dtype": str(lm.dtype).removeprefix("torch."),
            "device": lm.device,
        },
    )
