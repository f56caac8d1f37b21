"""The AlpaGasus judge on a local Hugging Face causal LM: expected score from next-token probabilities.

Chen et al., 2024, "AlpaGasus" (ICLR) read the score from the first line of ChatGPT's reply. A local
model needs no generation: after the rating prompt (in the model's chat template, with the generation
prompt) the next token is the score, so one forward pass gives p(s) for every score token s, and the
score is sum(s * p(s)) / sum(p(s)). `judge_mass` keeps sum(p(s)), how sure the model is that it is
writing a score at all; `judge_raw` keeps each p(s). Below `min_mass` (MIN_MASS, a half, by default) the
score is missing, with the mass in its reason: the model was not answering with a score.

Prompts are sorted by length and batched by a token budget, right-padded (causal attention never sees a
pad), and only the last real position of each prompt goes through the LM head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError
from ..data.example import Example
from ..models.embedded import EMBEDDED
from .base import Advance, Chunks, ModelRuntime, Skip, chunk_for, lm_about, lm_cache_key, lm_tokenizer
from .judge_columns import COLUMN_REASONS, judge_row, judge_schema
from .judge_prompts import JudgePrompt, expected_score, get_prompt
from .losses import AnswerLoss, batch_tokens_for

# The least probability the score tokens must hold for a rating to count (`LocalJudge.min_mass`). Half:
# a score must be the model's answer, more likely than everything else it could write there together;
# below that the expected value renormalizes a distribution the model barely put on the scale (the
# embedded SmolLM2-135M puts a median 1.1% there on the AlpaGasus prompt, at most 11%, over 150 Alpaca
# rows), and reads like a confident score. Lower it knowingly (`judge_min_mass`) for a weak model.
MIN_MASS = 0.5


@dataclass
class _Prompt:
    ids: tuple[int, ...] = ()
    truncated: bool = False
    reason: str | None = None


@dataclass
class LocalJudge(ModelRuntime):
    """AlpaGasus ratings from a local causal LM, as the expected score over the score tokens."""

    chunks: ClassVar[tuple[int, int]] = (256, 4096)  # examples per chunk on a CPU, a GPU (`chunk_size` unset)

    model: Any = EMBEDDED  # a name/path/hub id for `models.load_causal_lm`, or a `LoadedModel`
    dimension: str = "accuracy"
    prompt: str | None = None
    max_length: int = 2048
    min_mass: float = MIN_MASS
    columns: ClassVar[dict[str, str | None]] = COLUMN_REASONS
    name: str = field(default="judge", init=False)

    def __post_init__(self) -> None:
        self._prompt: JudgePrompt = get_prompt(self.dimension, self.prompt)
        if self.max_length < 64:
            raise OptionError(
                f"{{max_length}} must be at least 64 for the local judge, got {self.max_length}", "max_length"
            )
        if not 0.0 <= self.min_mass <= 1.0:
            raise OptionError(f"{{min_mass}} must be between 0 and 1, got {self.min_mass}", "min_mass")

    @property
    def schema(self) -> Any:
        return judge_schema()

    def _prepare(self, lm: Any) -> None:
        self._head = AnswerLoss.of(lm)
        self._score_ids = self._find_score_ids(lm.tokenizer)

    def _find_score_ids(self, tok: Any) -> dict[int, list[int]]:
        """Token ids that spell each score on their own ("4", and " 4" where it is another token)."""
        out: dict[int, list[int]] = {}
        for s in self._prompt.scores:
            ids = []
            for text in (str(s), f" {s}"):
                enc = tok(text, add_special_tokens=False).input_ids
                if len(enc) == 1 and enc[0] not in ids:
                    ids.append(enc[0])
            if not ids:
                raise OptionError(f"the tokenizer of {self.model!r} has no single token for the score {s}")
            out[s] = ids
        return out

    def cache_key(self) -> str:
        tok = lm_tokenizer(self)
        self._find_score_ids(tok)  # a tokenizer without a token for each score is an error before any scoring
        return lm_cache_key(
            self,
            "judge-local/1",
            prompt=self._prompt.config(),
            chat_template=getattr(tok, "chat_template", None),
            max_length=self.max_length,
            min_mass=self.min_mass,
        )

    def describe(self) -> str:
        return (
            f"{lm_about(self)}, expected score over next-token probabilities, "
            f"prompt {self._prompt.name}, max_length {self.max_length}, "
            f"missing below {self.min_mass:g} of the probability on the score tokens"
        )

    # -- prompts -------------------------------------------------------------------------------------
    def render(self, messages: list[dict[str, str]]) -> str:
        """The rating prompt as the model sees it, up to where its answer (the score) begins."""
        tok = self.load().tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            bos = getattr(tok, "bos_token", None)
            if bos and text.startswith(bos) and tok("").input_ids[:1] == [tok.bos_token_id]:
                text = text[len(bos) :]  # the tokenizer adds it
            return text
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def encode(self, example: Example) -> _Prompt:
        """Token ids of the prompt; a response too long for `max_length` is cut (and flagged)."""
        tok = self.load().tokenizer
        start = tuple(tok("").input_ids)

        def ids_of(ex: Example) -> tuple[int, ...]:
            return start + tuple(tok(self.render(self._prompt.messages(ex)), add_special_tokens=False).input_ids)

        ids = ids_of(example)
        if len(ids) <= self.max_length:
            return _Prompt(ids)
        response = example.messages[example.answer_turns[-1]] if example.answer_turns else None
        if response is None:
            return _Prompt(reason=f"the prompt is {len(ids)} tokens, over max_length {self.max_length}")
        r_ids = tok(response.content, add_special_tokens=False).input_ids
        keep = len(r_ids) - (len(ids) - self.max_length) - 8  # room for tokens that merge at the cut
        if keep > 0:
            cut = tok.decode(r_ids[:keep])
            last = example.answer_turns[-1]
            msgs = list(example.messages)
            msgs[last] = type(response)(response.role, cut, response.context)
            ids = ids_of(Example(example.id, tuple(msgs), example.row))
            if len(ids) <= self.max_length:
                return _Prompt(ids, truncated=True)
        return _Prompt(reason=f"the prompt without its response is over max_length {self.max_length} tokens")

    # -- scoring -------------------------------------------------------------------------------------
    def probabilities(self, prompts: Sequence[tuple[int, ...]], budget: int) -> list[dict[int, float]]:
        """p(score) at the end of each prompt, batched by `budget` padded tokens, in input order."""
        import torch

        self.load()
        head = self._head
        flat = [(s, i) for s, ids in self._score_ids.items() for i in ids]
        wanted = torch.tensor([i for _, i in flat], device=head.device)
        out: list[dict[int, float]] = [{} for _ in prompts]
        # The rating prompt's long system text is shared: it runs once per batch (see losses.AnswerLoss).
        limits = [len(p) - 1 for p in prompts]
        for prefix, idx in head.plan(prompts, limits, budget, max_batch=64):
            last = torch.tensor([len(prompts[i]) - 1 - prefix for i in idx], device=head.device)
            with torch.inference_mode():
                hidden = head.hidden([prompts[i] for i in idx], prefix)
                picked = hidden[torch.arange(len(idx), device=head.device), last]
                probs = torch.softmax(head._logits(picked), dim=-1)[:, wanted].double().cpu().tolist()
            for b, i in enumerate(idx):
                for (s, _), p in zip(flat, probs[b], strict=True):
                    out[i][s] = out[i].get(s, 0.0) + p
        return out

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        """Yield (content_hash, columns) chunk by chunk (chunks depend only on the examples)."""
        lm = self.load()
        budget = max(batch_tokens_for(lm.device, self.batch_tokens), self.max_length)
        chunk = chunk_for(self, lm.device)
        advance = advance or (lambda _n: None)
        todo = [ex for ex in examples if ex.content_hash not in skip]
        for lo in range(0, len(todo), chunk):
            part = todo[lo : lo + chunk]
            prompts = [self.encode(ex) for ex in part]
            ok = [i for i, p in enumerate(prompts) if p.reason is None]
            probs = self.probabilities([prompts[i].ids for i in ok], budget)
            rows: list[dict[str, Any]] = [{} for _ in part]
            for i, p in zip(ok, probs, strict=True):
                value, mass = expected_score(p)
                raw = json.dumps({str(s): float(f"{v:.6g}") for s, v in sorted(p.items())})
                reason = None if value is not None else "no probability on the score tokens"
                if value is not None and mass < self.min_mass:
                    value, reason = None, f"low score-token mass: {mass:.3g} < {self.min_mass:g}"
                rows[i] = judge_row(
                    value, raw=raw, reason=reason, source="next-token", mass=mass, truncated=prompts[i].truncated
                )
            for i, p in enumerate(prompts):
                if p.reason is not None:
                    rows[i] = judge_row(reason=p.reason, source="next-token")
            advance(len(part))
            yield [(ex.content_hash, row) for ex, row in zip(part, rows, strict=True)]
