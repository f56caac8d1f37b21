"""Cherry LLM's pre-experienced model: the phases that run before IFD scoring.

Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection for
Instruction Tuning" (NAACL), section 2.1 "Learning from Brief Experience":
  (1) embed every instruction with the base LM's own mean-pooled last hidden state, cluster the
      embeddings with K-Means (100 clusters) and take 10 examples per cluster, spread evenly over the
      cluster's instruction-perplexity band; fine-tune the base model one epoch on those 1,000
      (full fine-tuning, as the paper);
  (2) score IFD of every example with that pre-experienced model;
  (3) drop IFD > 1 and keep the top ratio (the `cherry` method's selectors).
This module does (1) and returns the model that (2) scores with. Every phase is cached: the sample in
`<cache>/pre-experience/<key>/sample.json`, the model in `.../model/` (both written atomically), the
embeddings and IFD in the score cache, so a rerun skips what is finished and an interrupted fine-tuning
resumes from its checkpoint. The key covers the data, the base model's fingerprint and every setting.
Small data sets are scaled down so that the sample is at most half of the data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..data.errors import UserError
from .finetune import FinetuneConfig

# The paper's fine-tuning of the pre-experienced model: Alpaca's full fine-tuning recipe, one epoch.
PE_FINETUNE = FinetuneConfig(lora=False, epochs=1.0, lr=2e-5, batch_size=8)


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

    def sizes(self, n: int) -> tuple[int, int]:
        """(clusters, per cluster) for `n` examples: as asked when the sample fits in half the data,
        else fewer clusters (and, below 2 x per_cluster examples, fewer per cluster)."""
        if n < 2:
            raise UserError(f"the pre-experience phase needs at least 2 examples, got {n}")
        per = min(self.per_cluster, max(1, n // 2))
        clusters = max(1, min(self.n_clusters, n // (2 * per)))
        return clusters, per


@dataclass
class PreExperienceResult:
    model: str  # the pre-experienced model folder
    sample: list[str]  # ids of the examples it was fine-tuned on
    clusters: int
    per_cluster: int
    phases: dict[str, str]  # phase -> "ran" or "cached"
    folder: str


def _key(dataset: Any, base_fingerprint: str, settings: PreExperience, clusters: int, per: int) -> str:
    h = hashlib.sha256()
    config = {**asdict(settings), "clusters": clusters, "per": per, "base": base_fingerprint}
    config["finetune"] = {k: v for k, v in config["finetune"].items() if k not in ("device", "checkpoint_steps")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for ex in dataset.examples:
        h.update(ex.content_hash.encode())
    return h.hexdigest()[:16]


def instruction_perplexity(examples: list[Any], lm: Any, template: str, max_length: int) -> Any:
    """Log-perplexity of each example's first prompt (its instruction in the template) under the loaded
    model `lm`: the mean cross-entropy of its tokens after the first, as Cherry LLM's `ppl_ins_alone`."""
    import numpy as np

    from ..scoring.losses import AnswerLoss, Scored, batch_tokens_for
    from ..scoring.templates import get_template, start_ids, turn_texts

    tok = lm.tokenizer
    tmpl = get_template(template)
    start = start_ids(tok)
    prompts = [turn_texts(ex, tmpl, tok)[0][0] for ex in examples]
    ids = tok(prompts, add_special_tokens=False).input_ids if prompts else []
    seqs = [Scored((start + tuple(p))[:max_length], len(start)) for p in ids]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    loss = AnswerLoss(lm.model, pad if pad is not None else 0)
    out = np.full(len(seqs), np.nan)
    for idx, results in loss.run(seqs, batch_tokens_for(lm.device)):
        for i, (total, n) in zip(idx, results, strict=True):
            out[i] = total / n if n else np.nan
    return out


def instruction_vectors(dataset: Any, lm: Any, settings: PreExperience, **engine: Any) -> tuple[Any, Any]:
    """(vectors, valid): the loaded model `lm`'s mean-pooled last hidden state over each example's
    templated prompt, from the `embed` scorer (cached in the score cache like any score)."""
    from ..engine.local import score
    from ..scoring.embed import Embed
    from ..selection.vectors import vector_column

    scorer = Embed(encoder=lm, text="prompt", template=settings.template, max_length=settings.max_length)
    table = score(dataset, [scorer], **engine)
    return vector_column(table, scorer.column)


def pre_experience(
    dataset: Any,
    model: str = "embedded",
    settings: PreExperience | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PreExperienceResult:
    """Phase 1 of Cherry LLM on `dataset`: sample by K-Means over instruction embeddings, then fine-tune
    `model` on the sample. Returns the pre-experienced model to score IFD with."""
    import numpy as np

    from ..models import cache_root, load_causal_lm, resolve
    from ..selection.cluster import kmeans_sample
    from .finetune import finetune

    settings = settings or PreExperience()
    log = log or (lambda _m: None)
    examples = dataset.examples
    clusters, per = settings.sizes(len(examples))
    if (clusters, per) != (settings.n_clusters, settings.per_cluster):
        log(
            f"{len(examples)} examples: sampling {clusters} clusters x {per} instead of "
            f"{settings.n_clusters} x {settings.per_cluster}"
        )
    base = resolve(model)
    root = Path(cache_dir) if cache_dir else cache_root()
    folder = root / "pre-experience" / _key(dataset, base.fingerprint, settings, clusters, per)
    phases: dict[str, str] = {}
    sample_file = folder / "sample.json"
    if sample_file.exists():
        sample = json.loads(sample_file.read_text())["ids"]
        phases["sample"] = "cached"
    else:
        lm = load_causal_lm(model, dtype=settings.finetune.dtype, device=settings.finetune.device)
        vectors, valid = instruction_vectors(dataset, lm, settings, cache_dir=cache_dir, progress=progress)
        ppl = instruction_perplexity(examples, lm, settings.template, settings.max_length)
        del lm
        usable = np.flatnonzero(valid & np.isfinite(ppl))
        if len(usable) < clusters:
            raise UserError(
                f"only {len(usable)} examples have an instruction embedding: too few for {clusters} clusters"
            )
        picked = kmeans_sample(
            vectors[usable], clusters, per, scores=ppl[usable], band=settings.band, seed=settings.seed
        )
        sample = [examples[i].id for i in usable[picked].tolist()]
        write_text(sample_file, json.dumps({"ids": sample, "clusters": clusters, "per_cluster": per}, indent=1))
        phases["sample"] = "ran"
    log(f"phase 1a, K-Means sample ({clusters} clusters x {per}, {len(sample)} examples): {phases['sample']}")
    model_dir = folder / "model"
    if (model_dir / "config.json").exists():
        phases["finetune"] = "cached"
    else:
        by_id = {ex.id: ex for ex in examples}
        config = replace(settings.finetune, template=settings.template, max_length=settings.max_length)
        finetune([by_id[i] for i in sample], model, model_dir, config, progress=progress)
        phases["finetune"] = "ran"
    log(f"phase 1b, pre-experienced model ({settings.finetune.epochs:g} epoch on the sample): {phases['finetune']}")
    return PreExperienceResult(str(model_dir), sample, clusters, per, phases, str(folder))


def prepare(dataset: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The `cherry` method's prepare hook: with `pre_experience` set, run phase 1 and score IFD with the
    pre-experienced model (phase 2); the method's selectors then do phase 3. Options: pe_clusters,
    pe_per_cluster, pe_epochs, seed, and the scoring options (model, template, max_length, dtype, device)."""
    if not options.get("pre_experience"):
        return options
    ft = replace(
        PE_FINETUNE,
        epochs=options.get("pe_epochs") or PE_FINETUNE.epochs,
        dtype=options.get("dtype") or "auto",
        device=options.get("device") or "auto",
        trust_remote_code=bool(options.get("trust_remote_code")),
    )
    settings = PreExperience(
        n_clusters=options.get("pe_clusters") or 100,
        per_cluster=options.get("pe_per_cluster") or 10,
        template=options.get("template") or "alpaca",
        max_length=options.get("max_length") or 512,
        finetune=ft,
    )
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    result = pre_experience(
        dataset,
        options.get("model") or "embedded",
        settings,
        cache_dir=options.get("cache_dir"),
        progress=not options.get("quiet"),
        log=lambda m: console.print(f"[dim]cherry pre-experience: {m}[/]", highlight=False),
    )
    return {**options, "model": result.model}
