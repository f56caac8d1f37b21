"""Next-token probabilities of a few chosen tokens at the end of many prompts, batched.

What a model-as-scorer needs (the DEITA scorers; the local judge does the same inside
`judge_local.LocalJudge.probabilities`): one forward pass per prompt, the full-vocabulary softmax at the
last position, and the probabilities of the score tokens. Prompts are grouped by a shared prefix, sorted
by length and batched by a token budget (`losses.AnswerLoss.plan`), right-padded, and only the last real
position of each prompt goes through the LM head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MAX_BATCH = 64


def single_token_ids(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """The vocabulary entry spelled exactly as each text ("1" -> the id of the token "1"), as DEITA's
    scorers read their score digits; where the vocabulary has no such entry, the text's encoding when it
    is one token. A text that is neither is a `ValueError`."""
    out = []
    unk = getattr(tokenizer, "unk_token_id", None)
    for text in texts:
        tid = tokenizer.convert_tokens_to_ids(text)
        if tid is None or (tid == unk and text != getattr(tokenizer, "unk_token", None)):
            enc = tokenizer(text, add_special_tokens=False).input_ids
            if len(enc) != 1:
                raise ValueError(f"the tokenizer has no single token for {text!r}")
            tid = enc[0]
        out.append(int(tid))
    return out


def next_token_probabilities(
    head: Any, prompts: Sequence[Sequence[int]], token_ids: Sequence[int], budget: int, max_batch: int = MAX_BATCH
) -> list[list[float]]:
    """p(token) for each of `token_ids` as the next token after each prompt (softmax over the whole
    vocabulary, in float64), in input order. `head` is a `losses.AnswerLoss` over the model; `budget`
    caps the padded tokens of a batch."""
    import torch

    out: list[list[float]] = [[] for _ in prompts]
    if not prompts:
        return out
    wanted = torch.tensor(list(token_ids), device=head.device)
    limits = [len(p) - 1 for p in prompts]  # the shared prefix ends before the last position
    for prefix, idx in head.plan(prompts, limits, budget, max_batch=max_batch):
        last = torch.tensor([len(prompts[i]) - 1 - prefix for i in idx], device=head.device)
        with torch.inference_mode():
            hidden = head.hidden([prompts[i] for i in idx], prefix)
            picked = hidden[torch.arange(len(idx), device=head.device), last]
            probs = torch.softmax(head._logits(picked).double(), dim=-1)[:, wanted].cpu().tolist()
        for b, i in enumerate(idx):
            out[i] = probs[b]
    return out
