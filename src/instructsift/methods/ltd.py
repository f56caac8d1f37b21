"""LTD: a k-center coreset of example embeddings, seeded by K-Means.

Chen et al., 2023, "Maybe Only 0.5% Data is Needed: A Preliminary Exploration of Low Training Data
Instruction Tuning", arXiv:2305.09246. Examples are embedded (mean-pooled, L2-normalised), clustered
with K-Means, and a greedy k-center core-set (Sener & Savarese, ICLR 2018) grown from the cluster
centres picks the target number. The paper embeds with the model being tuned (`--encoder lm` or
`lm:<model>`); the default here is the embedded all-MiniLM-L6-v2, much faster on a CPU. The number of
seed clusters (a tenth of the target, 1 to 100) is instructsift's choice: the paper does not give one.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..models.embedded import EMBEDDED
from ..registry import ModelRef, method, step
from .base import Encoder, Size, embed_options


class Params(Size, Encoder):
    model: ModelRef = Field(EMBEDDED, description="the causal LM that embeds with --encoder lm")
    dtype: str = Field("auto", description="auto, float32, bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    trust_remote_code: bool = Field(False, description="allow a hub model's own code to run")
    n_clusters: int | None = Field(None, ge=1, description="K-Means seed clusters [target / 10, 1..100]")
    seed: int = Field(0, description="the K-Means seed")


@method(
    paper="Chen et al., 2023, Maybe Only 0.5% Data is Needed (LTD), arXiv:2305.09246",
    summary="embed each example; greedy k-center coreset of the target size, seeded by K-Means cluster centres",
    defaults={
        "encoder": "embedded (all-MiniLM-L6-v2); the paper: the tuned model (--encoder lm)",
        "embed_text": "instruction+input",
        "init": "kmeans, clusters = target / 10 (1..100)",
        "distance": "Euclidean on unit vectors",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    return [
        step("score", "embed", **embed_options(p)),
        step(
            "select",
            "kcenter",
            column="embedding",
            ratio=p.ratio,
            k=p.top,
            of="all",
            init="kmeans",
            n_clusters=p.n_clusters,
            seed=p.seed,
        ),
    ]
