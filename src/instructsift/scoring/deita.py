"""DEITA's complexity and quality scores: the expected score over the score digits' next-token probabilities.

Liu et al., ICLR 2024, "What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data
Selection in Instruction Tuning" (hkust-nlp/deita). Two scorer models, fine-tuned to answer a prompt
with one digit "1".."6", rate an instruction's complexity and an (instruction, response) pair's quality.
After the prompt (deita_prompts.py) one forward pass gives p(s) for the six score tokens s, and the
score is sum(s * p(s)) / sum(p(s)), what the reference computes as the softmax of the six logits.

Columns:
  `deita_complexity`   the complexity of the instruction(s), summed over the turns
  `deita_quality`      the quality of the (instruction, response) pair(s), summed over the turns
  `deita_score`        complexity x quality: sum over the turns of c_t * q_t (DEITA's combined
                       filter multiplies the per-turn lists and sums; one turn: c * q)
  `deita_complexity_mass`, `deita_quality_mass`  the probability the score tokens hold (the lowest
                       over the turns): how sure the model is that it is writing a score at all
  `deita_turns`        the answered turns scored; `deita_truncated` a field was cut to fit max_length
  `deita_reason`       why `deita_score` is missing

A turn whose score tokens hold less than `min_mass` of the next-token probability is not a score: its
value is missing (None) with the reason, never DEITA's fallback 3.0 (hkust-nlp/deita#36), and so is a
row whose prompt cannot be cut to fit `max_length`. Prompts are batched by a token budget across both
models' calls, and the engine caches every row by content and `cache_key()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.example import Example
from ..registry import ModelLike, register
from .base import Advance, Chunks, ModelRuntime, Skip, chunk_for, config_hash, lm_key, lm_plan, lm_tokenizer
from .deita_prompts import (
    COMPLEXITY,
    COMPLEXITY_SCORER,
    QUALITY,
    QUALITY_SCORER,
    SCORES,
    complexity_prompt,
    quality_prompt,
    turns,
)
from .judge_prompts import expected_score
from .losses import AnswerLoss, batch_tokens_for
from .next_token import next_token_probabilities, single_token_ids

# The least probability the six score tokens must hold for a rating to count. Half: the score must be
# the model's answer, more likely than everything else it could write there together (the same rule as
# the local judge's). The released scorers are fine-tuned to write a digit there; a model that was not
# needs it lowered knowingly: the embedded SmolLM2-135M puts 0.06 to 0.61 there (median 0.39) on DEITA's
# two prompts for 8 Alpaca rows, and the lower of its two masses is under 0.5 for 28 of 30 short rows.
MIN_MASS = 0.5
# The scorers were trained with model_max_length 2048 (examples/train/train_scorers.sh).
MAX_LENGTH = 2048
COLUMNS = (
    "deita_complexity",
    "deita_quality",
    "deita_score",
    "deita_complexity_mass",
    "deita_quality_mass",
    "deita_turns",
    "deita_truncated",
    "deita_reason",
)
# The scores and their masses are missing with `deita_reason`; the turn count and truncation never are.
COLUMN_REASONS: dict[str, str | None] = {
    c: None if c in ("deita_turns", "deita_truncated", "deita_reason") else "deita_reason" for c in COLUMNS
}


Rated = tuple[float | None, float | None, str | None]  # (expected score, mass, reason)


@dataclass
class _Model:
    """A loaded scorer model, its batched head and the ids of its score tokens."""

    lm: Any
    head: AnswerLoss
    ids: list[int]


@dataclass
class _Prompt:
    ids: tuple[int, ...] = ()
    truncated: bool = False
    reason: str | None = None


@register("score", "deita")
@dataclass
class Deita(ModelRuntime):
    """DEITA complexity (of the instruction) and quality (of the response) from the scorer models, and
    their product `deita_score`."""

    chunks: ClassVar[tuple[int, int]] = (256, 4096)  # examples per chunk on a CPU, a GPU (`chunk_size` unset)

    complexity_model: ModelLike = COMPLEXITY_SCORER  # a hub id, folder, .gguf, "embedded", or a `LoadedModel`
    quality_model: ModelLike = QUALITY_SCORER
    min_mass: float = MIN_MASS
    max_length: int = MAX_LENGTH
    columns: ClassVar[dict[str, str | None]] = COLUMN_REASONS
    name: str = field(default="deita", init=False)
    _models: tuple[_Model, _Model] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_mass <= 1.0:
            raise ValueError(f"min_mass is a probability between 0 and 1, got {self.min_mass}")
        if self.max_length < 64:
            raise ValueError(f"the DEITA scorers need max_length >= 64, got {self.max_length}")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        f64, types = pa.float64(), {"deita_turns": pa.int64(), "deita_truncated": pa.bool_()}
        return pa.schema([(c, types.get(c, pa.string() if c == "deita_reason" else f64)) for c in COLUMNS])

    # -- models --------------------------------------------------------------------------------------
    def load(self) -> tuple[_Model, _Model]:
        """The complexity and quality models (one object when both name the same model)."""
        if self._models is None:
            from ..models import LoadedModel, load_causal_lm

            loaded: dict[str, Any] = {}

            def get(spec: Any) -> _Model:
                key = str(id(spec)) if isinstance(spec, LoadedModel) else str(spec)
                if key not in loaded:
                    lm = load_causal_lm(  # a `LoadedModel` is reused as it is
                        spec, dtype=self.dtype, device=self.device, trust_remote_code=self.trust_remote_code
                    )
                    tok = lm.tokenizer
                    try:
                        ids = single_token_ids(tok, [str(s) for s in SCORES])
                    except ValueError as e:
                        raise ValueError(f"{lm.source.name}: {e}: it cannot be a DEITA scorer") from None
                    loaded[key] = _Model(lm, AnswerLoss.of(lm), ids)
                return loaded[key]

            self._models = (get(self.complexity_model), get(self.quality_model))
        return self._models

    def score_ids(self, spec: ModelLike) -> list[int]:
        """The ids of the tokens '1'..'6' in the tokenizer of `spec` (the model loaded, or its tokenizer alone)."""
        if self._models is not None:
            return (self._models[0] if spec is self.complexity_model else self._models[1]).ids
        tok = lm_tokenizer(self, spec)
        try:
            return single_token_ids(tok, [str(s) for s in SCORES])
        except ValueError as e:
            raise ValueError(f"{lm_plan(self, spec).source.name}: {e}: it cannot be a DEITA scorer") from None

    def cache_key(self) -> str:
        c, q = (lm_key(self, spec) for spec in (self.complexity_model, self.quality_model))
        config = {
            "scorer": "deita/1",
            "complexity_model": c["model"],
            "quality_model": q["model"],
            "dtype": [c["dtype"], q["dtype"]],
            "device": [c["device"], q["device"]],
            "prompts": [COMPLEXITY, QUALITY],
            "score_tokens": [self.score_ids(self.complexity_model), self.score_ids(self.quality_model)],
            "min_mass": self.min_mass,
            "max_length": self.max_length,
        }
        return config_hash(config)

    def describe(self) -> str:
        c, q = (lm_plan(self, spec) for spec in (self.complexity_model, self.quality_model))
        return (
            f"complexity {c.source.name}, quality {q.source.name} ({c.dtype}, {c.device}), "
            f"expected score over the next-token probabilities of '1'..'6' after DEITA's prompts, missing "
            f"below {self.min_mass:g} of the probability on them, max_length {self.max_length}"
        )

    # -- prompts -------------------------------------------------------------------------------------
    def encode(self, model: _Model, render: Callable[..., str], fields: Sequence[str]) -> _Prompt:
        """Token ids of `render(*fields)` as the reference encodes it (the tokenizer's own special
        tokens, no chat template). Over `max_length`, the longest fields are cut to a common length
        (the response before a shorter instruction) and the prompt is flagged as truncated."""
        tok = model.lm.tokenizer
        ids = tok(render(*fields)).input_ids
        if len(ids) <= self.max_length:
            return _Prompt(tuple(ids))
        enc = [tok(f, add_special_tokens=False).input_ids for f in fields]
        overhead = len(ids) - sum(map(len, enc))
        for margin in (8, 32, 128):  # room for tokens that merge differently at a cut
            budget = self.max_length - overhead - margin * len(fields)
            if budget < len(fields):
                break
            cap = _level([len(e) for e in enc], budget)
            cut = [f if len(e) <= cap else tok.decode(e[:cap]) for f, e in zip(fields, enc, strict=True)]
            short = tok(render(*cut)).input_ids
            if len(short) <= self.max_length:
                return _Prompt(tuple(short), truncated=True)
        return _Prompt(reason=f"the prompt is {len(ids)} tokens and cannot be cut to max_length {self.max_length}")

    def _rate(self, model: _Model, prompts: list[_Prompt], budget: int) -> list[Rated]:
        """(expected score, mass, reason) for each prompt."""
        ok = [i for i, p in enumerate(prompts) if p.reason is None]
        probs = next_token_probabilities(model.head, [prompts[i].ids for i in ok], model.ids, budget)
        out: list[Rated] = [(None, None, p.reason) for p in prompts]
        for i, p in zip(ok, probs, strict=True):
            if not all(math.isfinite(x) for x in p):
                out[i] = (None, None, "the model's probabilities are not finite")
                continue
            value, mass = expected_score(dict(zip(SCORES, p, strict=True)))
            if value is None:
                out[i] = (None, mass, "no probability on the score tokens")
            elif mass < self.min_mass:
                out[i] = (None, mass, f"score-token mass {mass:.3g} < min_mass {self.min_mass:g}")
            else:
                out[i] = (value, mass, None)
        return out

    # -- scoring -------------------------------------------------------------------------------------
    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        """Yield (content_hash, columns) chunk by chunk (chunks depend only on the examples)."""
        c, q = self.load()
        budget = max(batch_tokens_for(c.lm.device, self.batch_tokens), self.max_length)
        chunk = chunk_for(self, c.lm.device)
        advance = advance or (lambda _n: None)
        todo = [ex for ex in examples if ex.content_hash not in skip]
        for lo in range(0, len(todo), chunk):
            part = todo[lo : lo + chunk]
            per_example = [turns(ex) for ex in part]
            flat = [t for ts in per_example for t in ts]
            c_prompts = [self.encode(c, complexity_prompt, [ins]) for ins, _ in flat]
            complexity = self._rate(c, c_prompts, budget)
            advance(len(part) / 2)
            q_prompts = [self.encode(q, quality_prompt, [ins, resp]) for ins, resp in flat]
            quality = self._rate(q, q_prompts, budget)
            advance(len(part) - len(part) / 2)
            rows, at = [], 0
            for ts in per_example:
                n = len(ts)
                cut = any(p.truncated for p in (*c_prompts[at : at + n], *q_prompts[at : at + n]))
                rows.append(_row(complexity[at : at + n], quality[at : at + n], cut))
                at += n
            yield [(ex.content_hash, row) for ex, row in zip(part, rows, strict=True)]


def _level(lengths: Sequence[int], budget: int) -> int:
    """The largest cap c with sum(min(n, c) for n in lengths) <= budget (longest fields cut first)."""
    remaining, left = budget, len(lengths)
    for n in sorted(lengths):
        share = remaining // left
        if n > share:
            return share
        remaining -= n
        left -= 1
    return max(lengths, default=0)


def _total(kind: str, rated: Sequence[Rated]) -> tuple[float | None, float | None, list[str]]:
    """(sum over turns or None, lowest mass, reasons) for one score."""
    masses = [m for _, m, _ in rated if m is not None]
    reasons = [
        f"{kind}{f', turn {t + 1} of {len(rated)}' if len(rated) > 1 else ''}: {why}"
        for t, (_, _, why) in enumerate(rated)
        if why is not None
    ]
    value = None if reasons else math.fsum(v for v, _, _ in rated if v is not None)
    return value, (min(masses) if masses else None), reasons


def _row(complexity: Sequence[Rated], quality: Sequence[Rated], truncated: bool) -> dict[str, Any]:
    """One example's columns from its turns' ratings; a missing score always carries its reason."""
    if not complexity:
        return {
            **dict.fromkeys(COLUMNS),
            "deita_turns": 0,
            "deita_truncated": False,
            "deita_reason": "no answered (instruction, response) turn to score",
        }
    c, c_mass, c_why = _total("complexity", complexity)
    q, q_mass, q_why = _total("quality", quality)
    both = c is not None and q is not None
    score = math.fsum(a[0] * b[0] for a, b in zip(complexity, quality, strict=True)) if both else None
    return {
        "deita_complexity": c,
        "deita_quality": q,
        "deita_score": score,
        "deita_complexity_mass": c_mass,
        "deita_quality_mass": q_mass,
        "deita_turns": len(complexity),
        "deita_truncated": truncated,
        "deita_reason": None if both else "; ".join(c_why + q_why),
    }
