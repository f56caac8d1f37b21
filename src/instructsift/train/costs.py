"""The `trained_tokens` scorer: each example's answer tokens as fine-tuning would train them.

A token budget (`select --budget-tokens`, `compare --budget-tokens`) is counted in the tokens a fine-tune
trains on (Zhao et al., ICML 2024, "Long Is More for Alignment": at an equal number of examples, longer
answers are more training). They are counted exactly as `finetune` builds its sequences
(`finetune.costs_with`): the base model's tokenizer, the training template, an EOS after each answer, and
the `max_length` cut (a 2,000-token answer trains at most 512 tokens at max length 512); prompt tokens are
not trained and not counted. An example with nothing to train (no answer tokens left) counts 0.

It lives in `train/` because it counts with the trainer's own code; like every scorer it is cached by
content and configuration (the tokenizer's fingerprint, template, max length, EOS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import check_at_least
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import ModelRef, register
from ..scoring.base import LIGHT, Advance, Chunks, ResolvesModel, Resources, Skip, config_hash
from ..scoring.text import todo_chunks


@register("score", "trained_tokens")
@dataclass
class TrainedTokens(ResolvesModel):
    """Trained answer tokens (and training sequences) of each example for fine-tuning `model`."""

    model: ModelRef = EMBEDDED  # the base model to be fine-tuned: its tokenizer counts
    max_length: int = 512  # the fine-tune's tokens per sequence (its cut)
    template: str = "alpaca"  # the fine-tune's prompt template
    eos: bool = True  # an EOS after each answer, trained as an answer token
    trust_remote_code: bool = False
    chunk_size: int = 2048
    # counts, never missing: bookkeeping columns without a reason column
    resources: ClassVar[Resources] = LIGHT  # a tokenizer only, no model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = {"trained_tokens": None, "trained_sequences": None}
    name: str = field(default="trained_tokens", init=False)
    _tok: Any = field(default=None, init=False, repr=False)
    _source: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_at_least(self, max_length=2, chunk_size=1)
        from ..scoring.templates import get_template

        get_template(self.template)  # an unknown template fails now

    def config(self) -> Any:
        from .finetune import FinetuneConfig

        return FinetuneConfig(template=self.template, max_length=self.max_length, eos=self.eos,
                              trust_remote_code=self.trust_remote_code)  # fmt: skip

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("trained_tokens", pa.int64()), ("trained_sequences", pa.int64())])

    def tokenizer(self) -> Any:
        if self._tok is None:
            from .finetune import training_tokenizer

            self._tok = training_tokenizer(self.source().path, self.trust_remote_code)
        return self._tok

    def cache_key(self) -> str:
        config = {"scorer": "trained_tokens/1", "tokenizer": self.source().fingerprint, "template": self.template,
                  "max_length": self.max_length, "eos": self.eos}  # fmt: skip
        return config_hash(config)

    def describe(self) -> str:
        return (
            f"trained answer tokens for fine-tuning {self.source().name} ({self.template} template, "
            f"max length {self.max_length}{', EOS' if self.eos else ''}; prompts not counted)"
        )

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        from .finetune import costs_with

        tok, config = self.tokenizer(), self.config()
        for part in todo_chunks(examples, skip, self.chunk_size):
            costs = costs_with(part, tok, config)
            yield [
                (ex.content_hash, {"trained_tokens": c.tokens, "trained_sequences": c.sequences})
                for ex, c in zip(part, costs, strict=True)
            ]
            if advance:
                advance(len(part))


__all__ = ["TrainedTokens"]
