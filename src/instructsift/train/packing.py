"""Padding-free training batches and the answer-only loss that `train.finetune` runs on them.

A batch's sequences are concatenated into one row (no pad token is computed), each with its own position
ids; attention stays inside each sequence: flash-attention implementations take the sequence boundaries
(`cu_seq_lens_*`) natively, and for `sdpa` and `eager` a registered attention function runs the model's own
kernel once per sequence (causal, so `sdpa` takes its fast `is_causal` path). The LM head then runs only
on the positions that predict an answer token (`logits_to_keep`), and cross-entropy is taken in fp32 and
normalised by the batch's answer tokens, exactly as the model's own loss with `labels` would.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

PACKED, PACKED_EAGER = "instructsift_packed", "instructsift_packed_eager"  # registered attention functions
CPU_EAGER_MAX = 512  # on a CPU, sequences up to this long use the model's eager attention (see _packed_attention)
NATIVE = ("flash_attention_2", "flash_attention_3", "flash_attention_4")  # take cu_seq_lens themselves


def pack(rows: Sequence[dict[str, Sequence[int]]]) -> dict[str, Any]:
    """Rows of `input_ids` and `labels` as one padding-free row, with position ids and sequence bounds."""
    import torch

    lengths = [len(r["input_ids"]) for r in rows]
    bounds = torch.tensor([0, *accumulate(lengths)], dtype=torch.int32)
    return {
        "input_ids": torch.tensor([[t for r in rows for t in r["input_ids"]]], dtype=torch.long),
        "labels": torch.tensor([[t for r in rows for t in r["labels"]]], dtype=torch.long),
        "position_ids": torch.tensor([[p for n in lengths for p in range(n)]], dtype=torch.long),
        "cu_seq_lens_q": bounds,
        "cu_seq_lens_k": bounds,
        "max_length_q": max(lengths),
        "max_length_k": max(lengths),
    }


def _segment_mask(n: int, window: int | None, eager: bool, like: Any) -> Any:
    """Causal (and sliding-window) mask of one sequence: additive for eager attention, else bool."""
    import torch

    i = torch.arange(n, device=like.device)
    allowed = i[None, :] <= i[:, None]
    if window is not None:
        allowed &= i[:, None] - i[None, :] < window
    if not eager:
        return allowed[None, None]
    mask = torch.zeros((n, n), dtype=like.dtype, device=like.device)
    return mask.masked_fill_(~allowed, torch.finfo(like.dtype).min)[None, None]


def _packed_attention(always_eager: bool) -> Any:
    """Attention run once per packed sequence, with the model's own kernels: its `eager` one (plain
    matmuls) where the model was set to eager and, on a CPU, for sequences up to `CPU_EAGER_MAX` tokens
    (there a training step ran 10-25% faster than with sdpa's flash kernel, whose backward is slow on
    short bf16 sequences); `sdpa` otherwise, causal without a mask unless a sliding window cuts in."""

    def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
        import torch
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        if attention_mask is not None:
            raise ValueError("packed attention takes no padding mask: pack the batch instead (train.packing.pack)")
        bounds = kwargs.pop("cu_seq_lens_q", None)
        for name in ("cu_seq_lens_k", "max_length_q", "max_length_k"):
            kwargs.pop(name, None)
        window = kwargs.pop("sliding_window", None)
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        short = CPU_EAGER_MAX if query.device.type == "cpu" else 0
        cuts = bounds.tolist() if bounds is not None else [0, query.shape[2]]
        lengths = [b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        outs = []  # split, not slices: the backward of a split is one concatenation, not a zero-filled copy each
        for n, q, k, v in zip(lengths, *(t.split(lengths, dim=2) for t in (query, key, value)), strict=True):
            if eager is not None and (always_eager or n <= short):
                out = eager(module, q, k, v, _segment_mask(n, window, True, query), **kwargs)[0]
            else:
                mask = _segment_mask(n, window, False, query) if window is not None and n > window else None
                out = sdpa_attention_forward(module, q, k, v, mask, **kwargs)[0]
            outs.append(out)
        return torch.cat(outs, dim=1), None

    return attention


def use_packed_attention(model: Any) -> str:
    """Switch `model` to attention that keeps each packed sequence to itself; returns the implementation
    it had (to set back before saving)."""
    from transformers import AttentionInterface

    original = model.config._attn_implementation
    if original in NATIVE:
        return original
    name = PACKED_EAGER if original == "eager" else PACKED
    AttentionInterface.register(name, _packed_attention(always_eager=original == "eager"))
    model.set_attn_implementation(name)
    return original


def answer_loss(model: Any, inputs: dict[str, Any], num_items: Any = None, head_kwarg: bool = True) -> Any:
    """Summed fp32 cross-entropy of the answer tokens of a packed batch over `num_items` (the answer
    tokens of the whole accumulated batch; this batch's own count when None). The head runs only on the
    positions that predict an answer token."""
    import torch.nn.functional as F

    labels = inputs["labels"][0]
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    where = (labels[1:] != -100).nonzero().squeeze(1)  # position p predicts token p + 1
    if head_kwarg:
        logits = model(**rest, logits_to_keep=where, use_cache=False).logits[0]
    else:
        logits = model(**rest, use_cache=False).logits[0, where]
    loss = F.cross_entropy(logits.float(), labels[where + 1], reduction="sum")
    return loss / (num_items if num_items is not None else len(where))


def answer_trainer(head_kwarg: bool) -> type:
    """A `transformers.Trainer` whose loss is `answer_loss` on packed batches (see `pack`)."""
    from transformers import Trainer

    class AnswerTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            # normalised over the accumulated batch when the Trainer counted it, else per batch
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            loss = answer_loss(model, inputs, num_items_in_batch, head_kwarg)
            return (loss, None) if return_outputs else loss

    return AnswerTrainer


def accepts_logits_to_keep(model: Any) -> bool:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
