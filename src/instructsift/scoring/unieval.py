"""UniEval-style indicators for InstructMining: naturalness, coherence and understandability of the response.

InstructMining (Cao et al., 2023, arXiv:2307.06290) rates each pair with UniEval's dialogue evaluator
(Zhong et al., 2022, arXiv:2210.07197; `MingZhong/unieval-dialog`, a T5 fine-tuned for Boolean QA). It
does not install offline here: give a checkpoint you have (hub id or folder) as `model`; any
T5-style sequence-to-sequence model with "Yes" and "No" tokens runs. As in UniEval's `scorer.py`, each
dimension is a question put to the encoder (UniEval's dialogue wording, below; the dialogue history is the
instruction and input); the decoder takes one step from its start token, and the score is
P(Yes) / (P(Yes) + P(No)) of that step's softmax over the vocabulary (Yes and No are the first token of
each word), in [0, 1], higher is better. Columns `naturalness`, `coherence`, `understandability` (those
asked for); an input longer than `max_length` tokens keeps its start and is marked `unieval_truncated`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError
from ..data.example import Example
from ..registry import ModelRef, register
from .base import MODEL, Advance, Chunks, Resources, Skip, config_hash, lm_about, lm_key
from .reward import prompt_and_response

# UniEval's dialogue questions (maszhongming/UniEval, utils.py `add_question`, task "dialogue")
QUESTIONS = {
    "naturalness": "question: Is this a natural response in the dialogue? </s> response: {response}",
    "coherence": "question: Is this a coherent response given the dialogue history? </s> response: {response} "
    "</s> dialogue history: {history}",
    "understandability": "question: Is this an understandable response in the dialogue? </s> response: {response}",
}
DIMENSIONS = tuple(QUESTIONS)


def question(dimension: str, example: Example) -> str:
    """The Boolean question UniEval's dialogue evaluator answers for one dimension of `example`."""
    history, response = prompt_and_response(example)
    return QUESTIONS[dimension].format(response=response, history=history)


@register("score", "unieval")
@dataclass
class UniEval:
    """UniEval-style Boolean-QA scores (P(Yes)/(P(Yes)+P(No))) of a T5 evaluator, one column per dimension."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs

    model: ModelRef  # a UniEval checkpoint, e.g. MingZhong/unieval-dialog (hub id or folder)
    dimensions: list[str] = field(default_factory=lambda: list(DIMENSIONS))
    max_length: int = 1024
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    chunk_size: int = 256
    columns: ClassVar[dict[str, str | None]] = {
        **dict.fromkeys(DIMENSIONS, "unieval_reason"),
        "unieval_truncated": None,
        "unieval_reason": None,
    }
    name: str = field(default="unieval", init=False)
    _loaded: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.dimensions, str):
            self.dimensions = [d.strip() for d in self.dimensions.split(",") if d.strip()]
        unknown = [d for d in self.dimensions if d not in QUESTIONS]
        if unknown or not self.dimensions:
            raise OptionError(f"unieval dimensions must be among {', '.join(DIMENSIONS)}, got {self.dimensions}")
        self.columns = {
            **dict.fromkeys(self.dimensions, "unieval_reason"),
            "unieval_truncated": None,
            "unieval_reason": None,
        }
        if self.max_length < 2 or self.batch_size < 1 or self.chunk_size < 1:
            raise OptionError("max_length must be >= 2, batch_size and chunk_size >= 1")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        cols = [(d, pa.float64()) for d in self.dimensions]
        return pa.schema([*cols, ("unieval_truncated", pa.bool_()), ("unieval_reason", pa.string())])

    def load(self) -> Any:
        if self._loaded is None:
            from ..models import load_pretrained

            lm = load_pretrained(self.model, "AutoModelForSeq2SeqLM", dtype=self.dtype, device=self.device)
            model, tok = lm.model, lm.tokenizer
            if not model.config.is_encoder_decoder:
                raise OptionError(f"{self.model}: a UniEval evaluator is an encoder-decoder (T5) model")
            yes, no = tok("Yes").input_ids[0], tok("No").input_ids[0]
            if yes == no:
                raise OptionError(f"{self.model}: its tokenizer gives Yes and No the same first token")
            start = model.config.decoder_start_token_id
            if start is None:
                raise OptionError(f"{self.model}: the model config names no decoder_start_token_id")
            self._loaded = (model, tok, lm.source, lm.dtype, lm.device, yes, no, start)
        return self._loaded

    def cache_key(self) -> str:
        config = {
            "scorer": "unieval/1",
            **lm_key(self),
            "dimensions": sorted(self.dimensions),
            "max_length": self.max_length,
        }
        return config_hash(config)

    def describe(self) -> str:
        return (
            f"UniEval-style evaluator {lm_about(self)}: {', '.join(self.dimensions)}, "
            f"P(Yes)/(P(Yes)+P(No)), max_length {self.max_length}"
        )

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        from .text import todo_chunks

        for part in todo_chunks(examples, skip, self.chunk_size):
            yield self._chunk(part, advance or (lambda _n: None))

    def _chunk(self, part: list[Example], advance: Callable[[float], None]) -> list[tuple[str, dict[str, Any]]]:
        model, tok, _, _, dev, yes, no, start = self.load()
        empty = {d: None for d in self.dimensions}
        rows: list[dict[str, Any]] = []
        jobs: list[tuple[int, str, list[int]]] = []  # (row, dimension, token ids)
        for i, ex in enumerate(part):
            if not ex.answer_turns or not prompt_and_response(ex)[1].strip():
                rows.append({**empty, "unieval_truncated": False, "unieval_reason": "no response to score"})
                continue
            truncated = False
            for d in self.dimensions:
                ids = tok(question(d, ex)).input_ids
                truncated |= len(ids) > self.max_length
                jobs.append((i, d, ids[: self.max_length]))
            rows.append({**empty, "unieval_truncated": truncated, "unieval_reason": None})
        jobs.sort(key=lambda j: len(j[2]))  # similar lengths together: little padding
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        per_row = len(self.dimensions)
        for lo in range(0, len(jobs), self.batch_size):
            batch = jobs[lo : lo + self.batch_size]
            for (i, d, _), value in zip(batch, self._yes_share(model, batch, pad, yes, no, start, dev), strict=True):
                if value != value:
                    rows[i]["unieval_reason"] = f"{d}: the model gave NaN"
                else:
                    rows[i][d] = value
            advance(len(batch) / per_row)
        advance(len(part) - len(jobs) / per_row)
        return [(ex.content_hash, rows[i]) for i, ex in enumerate(part)]

    @staticmethod
    def _yes_share(model: Any, batch: list, pad: int, yes: int, no: int, start: int, dev: str) -> list[float]:
        """P(Yes) / (P(Yes) + P(No)) at the first decoder step, for each (row, dimension, ids) of `batch`."""
        import torch

        width = max(len(b[2]) for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (_, _, seq) in enumerate(batch):
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        decoder = torch.full((len(batch), 1), start, dtype=torch.long)
        with torch.inference_mode():
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), decoder_input_ids=decoder.to(dev)).logits
        probs = torch.softmax(logits[:, 0, :].float(), dim=-1)
        p_yes, p_no = probs[:, yes], probs[:, no]
        return (p_yes / (p_yes + p_no)).tolist()


__all__ = ["DIMENSIONS", "QUESTIONS", "UniEval", "question"]
