"""Cherry LLM: IFD with the Alpaca template, drop IFD > 1, keep the highest.

Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning", NAACL. The direct loss is taken after the response marker "### Response:";
examples whose instruction does not help (IFD > 1) are dropped, then the top ratio of what remains
is kept.

With `pre_experience` (`--pre-experience`), IFD is scored with the paper's pre-experienced model
(section 2.1, "Learning from Brief Experience"):
  (1) embed every instruction with the base LM's own mean-pooled last hidden state, cluster the
      embeddings with K-Means (100 clusters) and take 10 examples per cluster, spread evenly over the
      cluster's instruction-perplexity band; fine-tune the base model one epoch on those 1,000
      (full fine-tuning, as the paper);
  (2) score IFD of every example with that pre-experienced model;
  (3) drop IFD > 1 and keep the top ratio.
Phase (1) is four registered steps, each cached like any score or artifact, named here by their registry
names only (a method writes recipe steps; the `finetune` fit step itself lives in `train/fit.py`):

    - score: embed             as: pe    (encoder lm:MODEL, text prompt)
    - score: instruction_loss  as: pe    (the instruction's log-perplexity)
    - fit: finetune            as: pre_experienced
      on: [{select: kmeans_sample, with: {column: pe.embedding, score: pe.instruction_loss, ...}}]
    - score: ifd               with: {model: "@pre_experienced"}

`experiments.pre_experience.pre_experience()` runs phase (1) alone. Small data sets are scaled down so
that the sample is at most half of the data (`kmeans_sample`'s `max_fraction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..data.errors import OptionError
from ..registry import method, step
from ..selection.cluster import KMeansSample
from .base import LM, Size, lm_options

MODEL_NAME = "pre_experienced"  # the fit step's name: IFD scores with "@pre_experienced"


@dataclass
class PreExperience:
    """Settings of phase 1. `band` are the per-cluster percentiles of instruction perplexity to sample
    within (see `selection.cluster.kmeans_sample`). The fine-tuning defaults are the paper's: Alpaca's full
    fine-tuning recipe (lr 2e-5, batch 8), one epoch; they are the `finetune` fit step's options."""

    n_clusters: int = 100
    per_cluster: int = 10
    band: tuple[float, float] = (1.0, 99.0)
    seed: int = 42
    template: str = "alpaca"
    max_length: int = 512
    lora: bool = False
    epochs: float = 1.0
    lr: float = 2e-5
    batch_size: int = 8
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False

    def sizes(self, n: int) -> tuple[int, int]:
        """(clusters, per cluster) for `n` examples: as asked when the sample fits in half the data,
        else fewer clusters (and, below 2 x per_cluster examples, fewer per cluster)."""
        if n < 2:
            raise ValueError(f"the pre-experience phase needs at least 2 examples, got {n}")
        return KMeansSample(**self._sample_options()).sizes(n)

    def _sample_options(self) -> dict[str, Any]:
        return dict(
            column="pe.embedding",
            score="pe.instruction_loss",
            n_clusters=self.n_clusters,
            per_cluster=self.per_cluster,
            band=list(self.band),
            seed=self.seed,
            max_fraction=0.5,
        )

    def steps(self, model: str) -> list[dict[str, Any]]:
        """Phase (1) as recipe steps, ending in the fit step named `pre_experienced`."""
        trust = self.trust_remote_code or None
        lm = dict(dtype=self.dtype, device=self.device, trust_remote_code=trust)
        tuned = {k: getattr(self, k) for k in ("lora", "epochs", "lr", "batch_size", "dtype", "device")}
        embed = step("score", "embed", encoder=f"lm:{model}", text="prompt", template=self.template,
                     max_length=self.max_length, **lm)  # fmt: skip
        loss = step("score", "instruction_loss", model=model, template=self.template, max_length=self.max_length, **lm)
        fit = step("fit", "finetune", model=model, template=self.template, max_length=self.max_length,
                   trust_remote_code=trust, **tuned)  # fmt: skip
        embed["as"] = loss["as"] = "pe"
        fit["as"] = MODEL_NAME
        fit["on"] = [step("select", "kmeans_sample", **self._sample_options())]
        return [embed, loss, fit]


class Params(Size, LM):
    pre_experience: bool = Field(False, description="score IFD with the pre-experienced model")
    pe_clusters: int | None = Field(None, ge=1, description="pre-experience: K-Means clusters [100]")
    pe_per_cluster: int | None = Field(None, ge=1, description="pre-experience: examples per cluster [10]")
    pe_epochs: float | None = Field(None, gt=0, description="pre-experience: epochs [1]")


PE_FIELDS = ("pe_clusters", "pe_per_cluster", "pe_epochs")


def pre_experience_steps(p: Params) -> tuple[list[dict[str, Any]], str]:
    """The steps before IFD with `--pre-experience`, and the model reference IFD uses."""
    settings = PreExperience(
        n_clusters=p.pe_clusters or 100,
        per_cluster=p.pe_per_cluster or 10,
        template=p.template or "alpaca",
        max_length=p.max_length or 512,
        epochs=p.pe_epochs or 1.0,
        dtype=p.dtype,
        device=p.device,
        trust_remote_code=p.trust_remote_code,
    )
    return settings.steps(p.model), f"@{MODEL_NAME}"


@method(
    paper="Li et al., NAACL 2024, From Quantity to Quality (Cherry LLM)",
    summary="IFD = loss(answer | prompt) / loss(answer); drop IFD > 1, keep the top ratio of the rest",
    ratio_of="the rows with ifd <= 1, as Cherry LLM's data_by_IFD.py",
    aliases=("ifd",),
    defaults={
        "template": "alpaca",
        "max_length": 512,
        "prefix": "### Response:",
        "keep": "ifd <= 1",
        "rank": "ifd",
        "pre_experience": "off (on: K-Means 100 x 10, full fine-tuning 1 epoch)",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    scoring = lm_options(p)
    out: list[dict[str, Any]] = []
    if p.pre_experience:
        pe, model = pre_experience_steps(p)
        out += pe
        scoring["model"] = model
    elif any(k in p.model_fields_set for k in PE_FIELDS):
        raise OptionError(
            "{pe_clusters}, {pe_per_cluster} and {pe_epochs} need {pre_experience}",
            *("pe_clusters", "pe_per_cluster", "pe_epochs", "pre_experience"),
        )
    return [
        *out,
        step("score", "ifd", method="cherry", **scoring),
        step("select", "threshold", where="ifd <= 1"),
        step("select", "top", column="ifd", ratio=p.ratio, k=p.top, of="kept"),
    ]
