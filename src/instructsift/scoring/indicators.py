"""InstructMining's per-example quality indicators (Cao et al., 2023, "Instruction Mining", arXiv:2307.06290).

Scorers (each adds named columns; cached by content and configuration like every scorer):
  `lengths`  input_tokens, output_tokens (a tokenizer's tokens, no special tokens) and input_chars,
             output_chars. The input is every user turn's text (instruction and input), the output every
             assistant turn's text, joined by a blank line; output_tokens is the sum of each assistant
             turn's tokens. `tokens=False` writes the character counts alone (no tokenizer).
  `mtld`     MTLD lexical diversity of the output (`lexicalrichness`, factor threshold 0.72).
  `reward`   a reward score from any Hugging Face sequence-classification model with one label
             (`scoring/reward.py`).

Indicators that are not per-example scorers, computed from the score table by the `instructmining`
selector (`selection/instructmining.py`):
  `ppl`      perplexity of the response given the instruction, exp(loss_cond) of the IFD scorer in the
             same recipe (not recomputed);
  `knn6`     the mean Euclidean distance from an example's L2-normalised embedding to its 6 nearest
             neighbours among the rows being ranked (a data-set-level quantity: it changes with the pool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError, check_at_least
from ..data.example import Example
from ..errors import require
from ..models.embedded import EMBEDDED
from ..registry import ModelRef, register
from .base import LIGHT, Advance, Chunks, ResolvesModel, Resources, Skip, config_hash
from .text import todo_chunks

MTLD_THRESHOLD = 0.72  # McCarthy & Jarvis (2010); lexicalrichness's default


def input_text(example: Example) -> str:
    """Every user turn's text (instruction plus input), one paragraph each."""
    return "\n\n".join(m.text for m in example.messages if m.role == "user")


def output_text(example: Example) -> str:
    """Every assistant turn's text, one paragraph each."""
    return "\n\n".join(m.content for m in example.messages if m.role == "assistant")


def _key(config: dict[str, Any]) -> str:
    return config_hash(config)


@register("score", "lengths")
@dataclass
class Lengths(ResolvesModel):
    """Input and output length in tokens of `model`'s tokenizer and in characters."""

    model: ModelRef = EMBEDDED  # whose tokenizer counts tokens: embedded, a folder, a hub id or a .gguf
    tokens: bool = True  # False: characters alone, no tokenizer
    trust_remote_code: bool = False
    chunk_size: int = 1024
    resources: ClassVar[Resources] = LIGHT  # a tokenizer only, no model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = dict.fromkeys(
        ("input_tokens", "output_tokens", "input_chars", "output_chars")
    )
    name: str = field(default="lengths", init=False)
    _tok: Any = field(default=None, init=False, repr=False)
    _source: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_at_least(self, chunk_size=1)
        if not self.tokens:  # characters alone: the declaration follows the option
            self.columns = dict.fromkeys(("input_chars", "output_chars"))

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        names = tuple(self.columns)
        return pa.schema([(n, pa.int64()) for n in names])

    def tokenizer(self) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.source().path, trust_remote_code=self.trust_remote_code)
        return self._tok

    def cache_key(self) -> str:
        if not self.tokens:
            return _key({"scorer": "lengths/2", "tokenizer": None})
        return _key({"scorer": "lengths/2", "tokenizer": self.source().fingerprint})

    def describe(self) -> str:
        if not self.tokens:
            return "characters"
        return f"tokens of {self.source().name}'s tokenizer, and characters"

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        tok = self.tokenizer() if self.tokens else None
        for part in todo_chunks(examples, skip, self.chunk_size):
            ins, outs = [input_text(ex) for ex in part], [output_text(ex) for ex in part]
            rows = [{"input_chars": len(i), "output_chars": len(o)} for i, o in zip(ins, outs, strict=True)]
            if tok is not None:
                n_in = [len(ids) for ids in tok(ins, add_special_tokens=False).input_ids]
                for row, a, b in zip(rows, n_in, answer_tokens(tok, part), strict=True):
                    row.update(input_tokens=a, output_tokens=b)
            yield [(ex.content_hash, row) for ex, row in zip(part, rows, strict=True)]
            if advance:
                advance(len(part))


def answer_tokens(tok: Any, examples: Sequence[Example]) -> list[int]:
    """Each example's answer tokens: the sum over its assistant turns (no special tokens), one batched
    tokenizer call for every turn of `examples`."""
    turns = [[m.content for m in ex.messages if m.role == "assistant"] for ex in examples]
    counts = iter(len(ids) for ids in tok([t for ts in turns for t in ts], add_special_tokens=False).input_ids)
    return [sum(next(counts) for _ in ts) for ts in turns]


def mtld(text: str, threshold: float = MTLD_THRESHOLD) -> float:
    """MTLD of `text` (bidirectional, as lexicalrichness computes it); ValueError for a text without words."""
    lex = require("lexicalrichness", "the mtld score", extra="mining").LexicalRichness(text)
    if lex.words == 0:
        raise ValueError("the response has no words")
    return float(lex.mtld(threshold=threshold))


@register("score", "mtld")
@dataclass
class MTLD:
    """MTLD lexical diversity of the response (McCarthy & Jarvis, 2010), via `lexicalrichness`."""

    threshold: float = MTLD_THRESHOLD
    chunk_size: int = 512
    resources: ClassVar[Resources] = LIGHT  # no model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = {"mtld": "mtld_reason", "mtld_reason": None}
    name: str = field(default="mtld", init=False)
    requires: ClassVar = (("lexicalrichness", "mining"),)  # (module, extra): checked before any step runs

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise OptionError(f"threshold is a type-token ratio in (0, 1), got {self.threshold}")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("mtld", pa.float64()), ("mtld_reason", pa.string())])

    def cache_key(self) -> str:
        lexicalrichness = require("lexicalrichness", "the mtld score", extra="mining")
        version = getattr(lexicalrichness, "__version__", "?")
        return _key({"scorer": "mtld/1", "threshold": self.threshold, "lexicalrichness": version})

    def describe(self) -> str:
        return f"MTLD of the response (lexicalrichness, threshold {self.threshold:g})"

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        for part in todo_chunks(examples, skip, self.chunk_size):
            out = []
            for ex in part:
                try:
                    out.append((ex.content_hash, {"mtld": mtld(output_text(ex), self.threshold), "mtld_reason": None}))
                except (ValueError, ZeroDivisionError) as e:
                    out.append((ex.content_hash, {"mtld": None, "mtld_reason": str(e) or "no MTLD"}))
            yield out
            if advance:
                advance(len(part))


__all__ = ["MTLD", "Lengths", "input_text", "mtld", "output_text"]
