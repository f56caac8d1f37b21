"""A reward score from a Hugging Face sequence-classification reward model (one label), for InstructMining.

InstructMining (Cao et al., 2023, arXiv:2307.06290) rates each pair with OpenAssistant's reward model
(`OpenAssistant/oasst-rm-2.1-pythia-1.4b-epoch-2.5`); any model with one output label works here, by hub
id or folder. How the pair is shown to the model (`format`):
  `pair`   the tokenizer's text pair (prompt, response): the DeBERTa reward models of OpenAssistant;
  `oasst`  "<|prompter|>{prompt}<|endoftext|><|assistant|>{response}<|endoftext|>": the Pythia ones;
  `chat`   the tokenizer's chat template over the messages.
The prompt is every turn before the last answer, one paragraph each; the response is the last answer.

OpenAssistant's Pythia reward models, the paper's among them, are NOT transformers classes: their config
says `model_type: gpt_neox_reward_model`, `architectures: [GPTNeoXRewardModel]`, a class defined in the
Open-Assistant repository (model_training/models/reward_model.py), not in transformers nor in the hub repo,
so AutoModelForSequenceClassification cannot load them, even with trust_remote_code. `register_oasst_reward`
(called before every load) teaches the Auto classes that layout: a GPTNeoXModel (`gpt_neox.*`) and a linear
head to one output (`out_proj`) on the last token (`pooling: last`, the default) or the mean over the tokens
(`pooling: mean`). It is tested on a tiny random model saved in that layout, not on the real checkpoint (the
hub is not reachable here).

Sequences are grouped by exact length, so no batch holds padding and the classifier always pools the
last real token, whatever the model's pad token is (some reward models use their end-of-text token as
pad, which padded batches would pool wrongly). A sequence longer than `max_length` keeps its start and
is marked `reward_truncated`.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError
from ..data.example import Example
from ..registry import ModelRef, register
from .base import MODEL, Advance, Chunks, Resources, Skip, config_hash, lm_about, lm_key

FORMATS = ("pair", "oasst", "chat")
OASST = "<|prompter|>{prompt}<|endoftext|><|assistant|>{response}<|endoftext|>"


def prompt_and_response(example: Example) -> tuple[str, str]:
    """The turns before the last answer (one paragraph each) and the last answer."""
    turns = example.answer_turns
    last = turns[-1] if turns else len(example.messages)
    prompt = "\n\n".join(m.text for m in example.messages[:last])
    return prompt, example.messages[last].content if turns else ""


OASST_REWARD_TYPE = "gpt_neox_reward_model"


@functools.cache
def register_oasst_reward() -> None:
    """Register OpenAssistant's GPT-NeoX reward model layout (`model_type: gpt_neox_reward_model`) with
    AutoConfig and AutoModelForSequenceClassification (once per process)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, GPTNeoXConfig, GPTNeoXModel
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXPreTrainedModel

    class GPTNeoXRewardConfig(GPTNeoXConfig):
        model_type = OASST_REWARD_TYPE

        def __init__(self, pooling: str = "last", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.pooling = pooling or "last"
            self.num_labels = 1  # one linear output, whatever label names the saved config carries

    class GPTNeoXRewardModel(GPTNeoXPreTrainedModel):
        config_class = GPTNeoXRewardConfig

        def __init__(self, config: GPTNeoXRewardConfig) -> None:
            super().__init__(config)
            self.gpt_neox = GPTNeoXModel(config)
            self.out_proj = torch.nn.Linear(config.hidden_size, 1)
            self.post_init()

        def forward(self, input_ids: Any, attention_mask: Any = None, **_: Any) -> SequenceClassifierOutput:
            hidden = self.gpt_neox(input_ids, attention_mask=attention_mask).last_hidden_state
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            if self.config.pooling == "mean":
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            else:  # the last token that is not padding
                pooled = hidden[torch.arange(len(hidden), device=hidden.device), mask.sum(1) - 1]
            return SequenceClassifierOutput(logits=self.out_proj(pooled))

    AutoConfig.register(OASST_REWARD_TYPE, GPTNeoXRewardConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(GPTNeoXRewardConfig, GPTNeoXRewardModel, exist_ok=True)


@register("score", "reward")
@dataclass
class Reward:
    """Reward score (`reward`) from a sequence-classification model with one label, by hub id or folder."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs

    model: ModelRef
    format: str = "pair"
    max_length: int = 1024
    batch_size: int = 16
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    chunk_size: int = 256
    columns: ClassVar[dict[str, str | None]] = {
        "reward": "reward_reason",
        "reward_truncated": None,
        "reward_reason": None,
    }
    name: str = field(default="reward", init=False)
    _loaded: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise OptionError(f"reward format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.max_length < 2 or self.batch_size < 1 or self.chunk_size < 1:
            raise OptionError("max_length must be >= 2, batch_size and chunk_size >= 1")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("reward", pa.float64()), ("reward_truncated", pa.bool_()), ("reward_reason", pa.string())])

    def load(self) -> Any:
        if self._loaded is None:
            from ..models import load_pretrained

            register_oasst_reward()
            lm = load_pretrained(self.model, "AutoModelForSequenceClassification", dtype=self.dtype,
                                 device=self.device, trust_remote_code=self.trust_remote_code)  # fmt: skip
            model = lm.model
            if model.config.num_labels != 1:
                raise OptionError(
                    f"{self.model}: a reward model has one output label, this one has {model.config.num_labels}"
                )
            # Batches hold sequences of one length (no padding): the classifier pools the last token. A pad
            # id no token has keeps models that look for padding from pooling an earlier end-of-text token.
            model.config.pad_token_id = -1
            self._loaded = (model, lm.tokenizer, lm.source, lm.dtype, lm.device)
        return self._loaded

    def cache_key(self) -> str:
        config = {"scorer": "reward/1", **lm_key(self), "format": self.format, "max_length": self.max_length}
        return config_hash(config)

    def describe(self) -> str:
        return f"reward model {lm_about(self)}, format {self.format}, max_length {self.max_length}"

    def encode(self, example: Example) -> list[int]:
        """The token ids the model scores for `example` (before truncation)."""
        _, tok, *_ = self.load()
        prompt, response = prompt_and_response(example)
        if self.format == "pair":
            return list(tok(prompt, response).input_ids)
        if self.format == "oasst":
            return list(tok(OASST.format(prompt=prompt, response=response)).input_ids)
        messages = [{"role": m.role, "content": m.text} for m in example.messages]
        out = tok.apply_chat_template(messages, tokenize=True)
        return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        from .text import todo_chunks

        for part in todo_chunks(examples, skip, self.chunk_size):
            yield self._chunk(part, advance or (lambda _n: None))

    def _chunk(self, part: list[Example], advance: Callable[[float], None]) -> list[tuple[str, dict[str, Any]]]:
        import torch

        model, _, _, _, dev = self.load()
        rows: dict[int, dict[str, Any]] = {}
        by_length: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
        for i, ex in enumerate(part):
            if not ex.answer_turns or not prompt_and_response(ex)[1].strip():
                rows[i] = {"reward": None, "reward_truncated": False, "reward_reason": "no response to score"}
                continue
            ids = self.encode(ex)
            rows[i] = {"reward": None, "reward_truncated": len(ids) > self.max_length, "reward_reason": None}
            ids = ids[: self.max_length]
            by_length[len(ids)].append((i, ids))
        for length in sorted(by_length):
            group = by_length[length]
            for lo in range(0, len(group), self.batch_size):
                batch = group[lo : lo + self.batch_size]
                ids = torch.tensor([b[1] for b in batch], device=dev)
                with torch.inference_mode():
                    logits = model(input_ids=ids).logits.float()[:, 0].tolist()
                for (i, _), value in zip(batch, logits, strict=True):
                    if value != value or value in (float("inf"), float("-inf")):
                        rows[i]["reward_reason"] = f"the model gave {value}"
                    else:
                        rows[i]["reward"] = value
                advance(len(batch))
        advance(len(part) - sum(len(g) for g in by_length.values()))
        return [(ex.content_hash, rows[i]) for i, ex in enumerate(part)]


__all__ = ["FORMATS", "OASST_REWARD_TYPE", "Reward", "prompt_and_response", "register_oasst_reward"]
