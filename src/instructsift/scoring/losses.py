"""Batched answer losses under a causal LM: the hot path of IFD and perplexity scorers.

Sequences are sorted by length and cut into batches by a token budget (the `Collator` pattern of
lm-evaluation-harness); each batch is right-padded, so causal attention never sees a pad and no
attention mask is needed. The LM head runs only on the positions that predict answer tokens, in
chunks, and cross-entropy is taken in fp32. Results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scored:
    """Token ids and the index of the first scored token (tokens before it are context)."""

    ids: tuple[int, ...]
    start: int

    @property
    def first(self) -> int:
        """First position actually scored: a token with nothing before it has no prediction."""
        return max(self.start, 1)

    @property
    def n_scored(self) -> int:
        return max(len(self.ids) - self.first, 0)


def plan_batches(lengths: Sequence[int], batch_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Indices grouped into batches, longest first, so that batch size x longest length <= budget."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * width > batch_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class AnswerLoss:
    """Sum of answer-token cross-entropies per sequence, computed batch by batch."""

    def __init__(self, model: Any, pad_id: int, head_chunk: int = 2048):
        self.model = model
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.pad_id = pad_id
        self.head_chunk = head_chunk
        self.device = next(model.parameters()).device
        cfg = getattr(model.config, "get_text_config", lambda: model.config)()
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        self.logit_scale = getattr(cfg, "logit_scale", None)  # Cohere multiplies
        self.logits_scaling = getattr(cfg, "logits_scaling", None)  # Granite divides

    def _logits(self, hidden: Any) -> Any:
        import torch

        logits = self.head(hidden).float()
        if self.logit_scale:
            logits = logits * self.logit_scale
        if self.logits_scaling:
            logits = logits / self.logits_scaling
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def batch(self, seqs: Sequence[Scored]) -> list[tuple[float, int]]:
        """(sum of losses, number of scored tokens) for each sequence of one batch."""
        import torch
        import torch.nn.functional as F

        width = max(len(s.ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        rows, cols = [], []
        for b, s in enumerate(seqs):
            ids[b, : len(s.ids)] = torch.tensor(s.ids, dtype=torch.long)
            n = s.n_scored
            rows.append(torch.full((n,), b, dtype=torch.long))
            cols.append(torch.arange(s.first, len(s.ids), dtype=torch.long))
        row = torch.cat(rows)
        col = torch.cat(cols)
        targets = ids[row, col].to(self.device)
        ids = ids.to(self.device)
        with torch.inference_mode():
            hidden = self.decoder(input_ids=ids, use_cache=False).last_hidden_state
            picked = hidden[row.to(self.device), (col - 1).to(self.device)]
            losses = torch.empty(len(col), dtype=torch.float32, device=self.device)
            for lo in range(0, len(col), self.head_chunk):
                hi = lo + self.head_chunk
                losses[lo:hi] = F.cross_entropy(self._logits(picked[lo:hi]), targets[lo:hi], reduction="none")
            sums = torch.zeros(len(seqs), dtype=torch.float64, device=self.device)
            sums.index_add_(0, row.to(self.device), losses.double())
        return [(float(v), s.n_scored) for v, s in zip(sums.tolist(), seqs, strict=True)]

    def run(
        self, seqs: Sequence[Scored], batch_tokens: int, max_batch: int = 256
    ) -> Iterator[tuple[list[int], list[tuple[float, int]]]]:
        """Yield (indices, results) batch by batch over `seqs`, longest first."""
        for idx in plan_batches([len(s.ids) for s in seqs], batch_tokens, max_batch):
            yield idx, self.batch([seqs[i] for i in idx])
