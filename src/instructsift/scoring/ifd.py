"""Instruction-Following Difficulty.

IFD = loss(answer | prompt) / loss(answer), the mean answer-token cross-entropy with and without the
instruction (Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided
Data Selection for Instruction Tuning", NAACL). Superfiltering (Li et al., 2024, "Superfiltering:
Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL) computes the same ratio with a small
model and reports it as exp(loss_cond - loss_direct), a perplexity ratio: `ifd_ppl`.

Let S be the tokens a tokenizer puts at the start by default (`tok("")`). Prompt and answer are
tokenized separately and concatenated:
  loss_cond   over the answer tokens of S + tok(prompt(q)) + tok(a)
  loss_direct over the answer tokens of S + tok(prefix) + tok(a); prefix = the template's response
              marker for `cherry`, empty for `superfiltering`; a token with nothing before it is not scored.
Multi-turn: every assistant turn is an answer, conditioned on everything before it; the example's
losses are token-weighted means over its turns, and per-turn values are kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError, check_at_least
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import ModelLike, register
from .base import Advance, Chunks, ModelRuntime, Skip, chunk_for, lm_about, lm_cache_key
from .losses import AnswerLoss, Scored, batch_tokens_for

METHODS = {
    # method: (template, marker prefix for loss_direct?, max_length)
    "cherry": ("alpaca", True, 512),
    "superfiltering": ("none", False, 1024),
}

IFD_OPTIONS = ("model", "template", "max_length", "dtype", "device", "batch_tokens", "chunk_size", "trust_remote_code")


@dataclass
class _Turn:
    """One answer of an example: its two sequences, or why it cannot be scored."""

    cond: Scored | None = None
    direct: Scored | None = None
    prompt_tokens: int = 0
    truncated: bool = False
    reason: str | None = None


def _schema() -> Any:
    import pyarrow as pa

    f64, i64 = pa.float64(), pa.int64()
    return pa.schema(
        [
            ("loss_cond", f64),
            ("loss_direct", f64),
            ("ifd", f64),
            ("ifd_ppl", f64),
            ("prompt_tokens", i64),
            ("answer_tokens", i64),
            ("n_turns", i64),
            ("turns_scored", i64),
            ("truncated", pa.bool_()),
            ("turn_loss_cond", pa.list_(f64)),
            ("turn_loss_direct", pa.list_(f64)),
            ("turn_ifd", pa.list_(f64)),
            ("reason", pa.string()),
        ]
    )


@register("score", "ifd")
@dataclass
class IFD(ModelRuntime):
    """IFD scorer. `method` picks the papers' defaults: cherry (alpaca template, response-marker prefix,
    max_length 512) or superfiltering (bare template, empty prefix, max_length 1024)."""

    model: ModelLike = EMBEDDED  # a name/path/hub id for `models.load_causal_lm`, or a `LoadedModel`
    method: str = "cherry"
    template: str | None = None
    max_length: int | None = None
    columns: ClassVar[dict[str, str | None]] = {
        **dict.fromkeys(("loss_cond", "loss_direct", "ifd", "ifd_ppl"), "reason"),
        **dict.fromkeys(("prompt_tokens", "answer_tokens", "n_turns", "turns_scored", "truncated")),
        **dict.fromkeys(("turn_loss_cond", "turn_loss_direct", "turn_ifd", "reason")),
    }
    name: str = field(default="ifd", init=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OptionError(f"IFD method must be one of {', '.join(METHODS)}, got {self.method!r}")
        template, self.use_marker, max_length = METHODS[self.method]
        self.template = self.template or template
        self.max_length = self.max_length or max_length
        check_at_least(self, max_length=2)
        from .templates import get_template

        self._template = get_template(self.template)

    @property
    def schema(self) -> Any:
        return _schema()

    # -- model ---------------------------------------------------------------------------------------
    def _prepare(self, lm: Any) -> None:
        self._loss = AnswerLoss.of(lm)

    def cache_key(self) -> str:
        """A hash of everything that changes the numbers: model weights, dtype, device kind, template, prefix."""
        return lm_cache_key(
            self, "ifd/1", method=self.method, template=self._template.config(), max_length=self.max_length
        )

    def describe(self) -> str:
        return f"{lm_about(self)}, template {self.template}, max_length {self.max_length}"

    # -- tokenization --------------------------------------------------------------------------------
    def plan(self, examples: Sequence[Example]) -> list[list[_Turn]]:
        """Tokenize every answer of every example into its conditioned and direct sequences."""
        from .templates import start_ids, tokenize_turns

        tok = self.load().tokenizer
        start = start_ids(tok)
        marker = tuple(tok(self._template.marker, add_special_tokens=False).input_ids) if self.use_marker else ()
        return [
            [self._turn(prompt, answer, start + marker) for prompt, answer in turns]
            for turns in tokenize_turns(examples, self._template, tok)
        ]

    def _turn(self, prompt: tuple[int, ...], answer: tuple[int, ...], prefix: tuple[int, ...]) -> _Turn:
        room = self.max_length - len(prompt)
        if not answer:
            return _Turn(prompt_tokens=len(prompt), reason="the answer is empty after tokenization")
        if room <= 0:
            return _Turn(
                prompt_tokens=len(prompt),
                reason=f"prompt is {len(prompt)} tokens: max_length {self.max_length} leaves no room for the answer",
            )
        kept = answer[:room]
        direct = Scored(prefix + kept, len(prefix))
        if direct.n_scored == 0:
            return _Turn(
                prompt_tokens=len(prompt), reason="a one-token answer with nothing before it has no direct loss"
            )
        return _Turn(Scored(prompt + kept, len(prompt)), direct, len(prompt), len(kept) < len(answer))

    # -- scoring -------------------------------------------------------------------------------------
    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        """Yield (content_hash, scores) lists, chunk by chunk. Chunks and batches depend only on the
        examples, so a resumed run recomputes exactly the batches an uninterrupted run would have."""
        lm = self.load()
        budget = batch_tokens_for(lm.device, self.batch_tokens)
        chunk = chunk_for(self, lm.device)
        advance = advance or (lambda _n: None)
        for lo in range(0, len(examples), chunk):
            part = examples[lo : lo + chunk]
            todo = [ex.content_hash not in skip for ex in part]
            if not any(todo):
                continue
            yield self._score_chunk(part, todo, budget, advance)

    def _score_chunk(
        self, part: Sequence[Example], todo: list[bool], budget: int, advance: Callable[[float], None]
    ) -> list[tuple[str, dict[str, Any]]]:
        plans = self.plan(part)
        seqs: list[Scored] = []
        owner: list[tuple[int, int, str]] = []
        for e, turns in enumerate(plans):
            for t, turn in enumerate(turns):
                if turn.cond is not None:
                    seqs += [turn.cond, turn.direct]
                    owner += [(e, t, "cond"), (e, t, "direct")]
        counts = Counter(o[0] for o in owner)
        per_example = [counts[e] for e in range(len(part))]
        results: dict[tuple[int, int, str], tuple[float, int]] = {}
        for idx, out in self._loss.run(seqs, budget):
            if not any(todo[owner[i][0]] for i in idx):
                continue
            for i, r in zip(idx, out, strict=True):
                results[owner[i]] = r
            advance(sum(1 / per_example[owner[i][0]] for i in idx if todo[owner[i][0]]))
        advance(sum(1 for e, n in enumerate(per_example) if n == 0 and todo[e]))
        return [(ex.content_hash, self._aggregate(plans[e], e, results)) for e, ex in enumerate(part) if todo[e]]

    @staticmethod
    def _aggregate(turns: list[_Turn], e: int, results: dict) -> dict[str, Any]:
        sums = {"cond": [0.0, 0], "direct": [0.0, 0]}
        t_cond, t_direct, t_ifd, reasons = [], [], [], []
        prompt_tokens = 0
        for t, turn in enumerate(turns):
            if turn.cond is None:
                t_cond.append(None)
                t_direct.append(None)
                t_ifd.append(None)
                reasons.append(f"turn {t + 1}: {turn.reason}" if len(turns) > 1 else turn.reason)
                continue
            (cs, cn), (ds, dn) = results[(e, t, "cond")], results[(e, t, "direct")]
            sums["cond"][0] += cs
            sums["cond"][1] += cn
            sums["direct"][0] += ds
            sums["direct"][1] += dn
            prompt_tokens += turn.prompt_tokens
            t_cond.append(cs / cn)
            t_direct.append(ds / dn)
            t_ifd.append(cs / cn / (ds / dn) if ds > 0 else None)
        row: dict[str, Any] = {
            "loss_cond": None,
            "loss_direct": None,
            "ifd": None,
            "ifd_ppl": None,
            "prompt_tokens": prompt_tokens,
            "answer_tokens": sums["cond"][1],
            "n_turns": len(turns),
            "turns_scored": sum(1 for x in t_cond if x is not None),
            "truncated": any(turn.truncated for turn in turns),
            "turn_loss_cond": t_cond,
            "turn_loss_direct": t_direct,
            "turn_ifd": t_ifd,
            "reason": None,
        }
        if row["turns_scored"] == 0:
            row["reason"] = "; ".join(reasons)
            return row
        loss_cond = sums["cond"][0] / sums["cond"][1]
        loss_direct = sums["direct"][0] / sums["direct"][1]
        row["loss_cond"], row["loss_direct"] = loss_cond, loss_direct
        if not (math.isfinite(loss_cond) and math.isfinite(loss_direct)) or loss_direct <= 0:
            row["reason"] = f"losses are not usable (cond {loss_cond}, direct {loss_direct})"
            row["loss_cond"] = row["loss_direct"] = None
            return row
        row["ifd"] = loss_cond / loss_direct
        row["ifd_ppl"] = math.exp(loss_cond - loss_direct)
        return row
