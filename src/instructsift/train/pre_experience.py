"""Cherry LLM's pre-experienced model, as recipe steps that run before IFD scoring.

Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection for
Instruction Tuning" (NAACL), section 2.1 "Learning from Brief Experience":
  (1) embed every instruction with the base LM's own mean-pooled last hidden state, cluster the
      embeddings with K-Means (100 clusters) and take 10 examples per cluster, spread evenly over the
      cluster's instruction-perplexity band; fine-tune the base model one epoch on those 1,000
      (full fine-tuning, as the paper);
  (2) score IFD of every example with that pre-experienced model;
  (3) drop IFD > 1 and keep the top ratio (the `cherry` method's selectors).
Phase (1) is four registered steps, each cached like any score or artifact:

    - score: embed             as: pe    (encoder lm:MODEL, text prompt)
    - score: instruction_loss  as: pe    (the instruction's log-perplexity)
    - fit: finetune            as: pre_experienced
      on: [{select: kmeans_sample, with: {column: pe.embedding, score: pe.instruction_loss, ...}}]
    - score: ifd               with: {model: "@pre_experienced"}

`cherry --pre-experience` expands to them; `experiments.pre_experience.pre_experience()` runs phase (1)
alone. Small data sets are
scaled down so that the sample is at most half of the data (`kmeans_sample`'s `max_fraction`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .finetune import FinetuneConfig

# The paper's fine-tuning of the pre-experienced model: Alpaca's full fine-tuning recipe, one epoch.
PE_FINETUNE = FinetuneConfig(lora=False, epochs=1.0, lr=2e-5, batch_size=8)
MODEL_NAME = "pre_experienced"  # the fit step's name: IFD scores with "@pre_experienced"


@dataclass
class PreExperience:
    """Settings of phase 1. `band` are the per-cluster percentiles of instruction perplexity to sample
    within (see `selection.cluster.kmeans_sample`)."""

    n_clusters: int = 100
    per_cluster: int = 10
    band: tuple[float, float] = (1.0, 99.0)
    seed: int = 42
    template: str = "alpaca"
    max_length: int = 512
    finetune: FinetuneConfig = field(default_factory=lambda: replace(PE_FINETUNE))
    trust_remote_code: bool = False

    def sizes(self, n: int) -> tuple[int, int]:
        """(clusters, per cluster) for `n` examples: as asked when the sample fits in half the data,
        else fewer clusters (and, below 2 x per_cluster examples, fewer per cluster)."""
        if n < 2:
            raise ValueError(f"the pre-experience phase needs at least 2 examples, got {n}")
        return self.sample_step().sizes(n)

    def sample_step(self) -> Any:
        from ..selection.cluster import KMeansSample

        return KMeansSample(**self._sample_options())

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
        from ..registry import step

        ft = self.finetune
        lm = dict(dtype=ft.dtype, device=ft.device, trust_remote_code=self.trust_remote_code or None)
        tuned = {k: getattr(ft, k) for k in ("lora", "epochs", "lr", "batch_size", "dtype", "device")}
        embed = step("score", "embed", encoder=f"lm:{model}", text="prompt", template=self.template,
                     max_length=self.max_length, **lm)  # fmt: skip
        loss = step("score", "instruction_loss", model=model, template=self.template, max_length=self.max_length, **lm)
        fit = step("fit", "finetune", model=model, template=self.template, max_length=self.max_length,
                   trust_remote_code=self.trust_remote_code or None, **tuned)  # fmt: skip
        embed["as"] = loss["as"] = "pe"
        fit["as"] = MODEL_NAME
        fit["on"] = [step("select", "kmeans_sample", **self._sample_options())]
        return [embed, loss, fit]


def pre_experience_steps(p: Any) -> tuple[list[dict[str, Any]], str]:
    """The `cherry` method's steps before IFD with `--pre-experience`, and the model reference IFD uses."""
    ft = replace(
        PE_FINETUNE,
        epochs=p.pe_epochs or PE_FINETUNE.epochs,
        dtype=p.dtype,
        device=p.device,
    )
    settings = PreExperience(
        n_clusters=p.pe_clusters or 100,
        per_cluster=p.pe_per_cluster or 10,
        template=p.template or "alpaca",
        max_length=p.max_length or 512,
        finetune=ft,
        trust_remote_code=p.trust_remote_code,
    )
    return settings.steps(p.model), f"@{MODEL_NAME}"
