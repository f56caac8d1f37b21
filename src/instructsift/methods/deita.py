"""DEITA: complexity x quality from two scorer models, then the best rows that are not near-duplicates.

Liu et al., ICLR 2024, "What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data
Selection in Instruction Tuning" (hkust-nlp/deita). Two LLaMA-1 13B scorers rate each turn's instruction
for complexity and each (instruction, response) pair for quality on 1-6 (the expected score over the
digits' next-token probabilities, `scoring/deita.py`); a row's score is the sum over its turns of
complexity x quality. The "Repr Filter" then walks the rows by score, highest first, and keeps one unless
its cosine similarity to a row already kept exceeds 0.9 (`diverse_top`), until the target is met (the
paper: 6k or 10k rows).

Rows the scorers could not rate (too little probability on the score digits, `--min-mass`) are dropped
with the scorer's reason; DEITA would have given them 3.0. The paper embeds rows with the model being
tuned (mean-pooled last hidden states; the reference code takes the last token's state of the whole
conversation): `--encoder lm` embeds with `--model`'s mean-pooled last hidden state. The default here is
the embedded all-MiniLM-L6-v2, much faster on a CPU; like the reference, it embeds the whole conversation.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..data.errors import OptionError
from ..models.embedded import EMBEDDED
from ..registry import ModelRef, method, step
from ..scoring.deita import MAX_LENGTH, MIN_MASS
from ..scoring.deita_prompts import COMPLEXITY_SCORER, QUALITY_SCORER
from .base import Encoder, Runtime, Size, embed_options, given

THRESHOLD = 0.9
SCORER_FIELDS = (
    "min_mass",
    "max_length",
    "dtype",
    "device",
    "batch_tokens",
    "chunk_size",
    "trust_remote_code",
)


class Params(Size, Encoder, Runtime):
    complexity_model: ModelRef = Field(
        COMPLEXITY_SCORER, description="the complexity scorer: a hub id, folder or embedded"
    )
    quality_model: ModelRef = Field(QUALITY_SCORER, description="the quality scorer: a hub id, folder or embedded")
    min_mass: float = Field(MIN_MASS, ge=0, le=1, description="least probability on the score digits for a score")
    max_length: int | None = Field(None, ge=64, description=f"tokens per scorer prompt [{MAX_LENGTH}]")
    threshold: float = Field(THRESHOLD, ge=-1, le=1, description="skip a row with cosine > this to a kept one")
    model: ModelRef = Field(EMBEDDED, description="the causal LM that embeds with --encoder lm (the model to tune)")


@method(
    paper="Liu et al., ICLR 2024, What Makes Good Data for Alignment? (DEITA)",
    summary="complexity x quality from two scorer models (expected score over the digits 1-6); walk by "
    "score, skip rows within cosine 0.9 of a kept one",
    defaults={
        "complexity_model": COMPLEXITY_SCORER,
        "quality_model": QUALITY_SCORER,
        "score": "sum over turns of complexity x quality",
        "min_mass": f"{MIN_MASS} (below: missing, never 3.0)",
        "encoder": "embedded (all-MiniLM-L6-v2); the paper: the tuned model (--encoder lm)",
        "embed_text": "whole",
        "threshold": f"cosine > {THRESHOLD} to a kept row is skipped",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    if "model" in p.model_fields_set and not p.encoder.startswith("lm"):
        raise OptionError(
            "{model} is the model that embeds with {encoder}; the scorers are {complexity_model} and {quality_model}",
            *("model", "complexity_model", "quality_model"),
            encoder="lm",
        )
    return [
        step(
            "score",
            "deita",
            complexity_model=p.complexity_model,
            quality_model=p.quality_model,
            **given(p, SCORER_FIELDS),
        ),
        step("score", "embed", **embed_options(p, text="whole")),
        step(
            "select",
            "diverse_top",
            score="deita_score",
            column="embedding",
            threshold=p.threshold,
            ratio=p.ratio,
            k=p.top,
            of="all",
        ),
    ]
