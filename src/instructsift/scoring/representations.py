"""Representations: a causal LM's hidden states, position-weighted mean-pooled, as RDS+ embeds examples.

Ivison et al., 2025, "Large-Scale Data Selection for Instruction Tuning" (arXiv 2503.01807; code
hamishivi/automated-instruction-selection, `compute_influence_cosinesim.py --pooling weighted_mean`):
each example is rendered in the Tulu chat format (`<|user|>\\n{instruction}\\n<|assistant|>\\n{answer}</s>\\n`),
run through the base model, and the final layer's hidden states are averaged with weights growing with
position (token t of L gets t / (1 + ... + L), after SGPT, arXiv 2202.08904), then L2-normalised. The
reference computes the weights over a batch's padded width; here they run over each sequence's own
tokens, which is what the reference computes one example at a time (its batch size of 1).

Options: `text` is `whole` (every turn, answers included: what the paper encodes for the pool) or
`prompt` (the turns before the first answer, then the assistant tag: all a target without answers has);
`template` is `tulu` (the paper's) or `chat` (the tokenizer's own chat template); `layer` picks a hidden
state (-1 = the last, as the paper; 0 = the embeddings). Vectors are `fixed_size_list<float32>` columns.

CRDS-R (Shu et al., 2026, arXiv 2602.13773; code tdano1/CRDS, `--pooling lastlayer --sec_pooling redcat`):
`layers` pools several hidden states alike and concatenates them; `project` (a dimension, with `seed`) maps
each layer's pooled vector through its own Rademacher matrix (entries +-1/sqrt(k), k = project / layers, as
the reference's per-layer projectors) before the concatenation and the L2 normalisation, so that the
similarity sees `project` dimensions whatever the number of layers (Johnson-Lindenstrauss: cosines are kept
up to about 1/sqrt(project)). The matrices come from `numpy.random.default_rng(seed)`: the same on every
device; layers, dimension and seed are in the cache key.

The `targets` fit step encodes a target file (`--target`) with the same settings and saves the vectors
with their task labels as an artifact that the `rds` selector reads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.errors import OptionError, check_at_least
from ..data.example import Example, Message
from ..models.embedded import EMBEDDED
from ..registry import DataRef, ModelLike, ModelRef, StrictModel, register
from .base import ModelRuntime, chunk_for
from .text import todo_chunks

TEXTS = ("whole", "prompt")
TEMPLATES = ("tulu", "chat")
TULU_TAGS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}
MAX_LENGTH = 2048  # the reference's tokens per example (Tulu 2)


def tulu_text(messages: Sequence[Message], text: str, eos: str) -> str:
    """The Tulu format of `messages`: every turn (`whole`) or those before the first answer plus the
    assistant tag (`prompt`); an answer ends with the tokenizer's EOS text."""
    if text == "prompt":
        first = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
        messages = messages[:first]
    parts = []
    for m in messages:
        end = eos if m.role == "assistant" else ""
        parts.append(f"{TULU_TAGS[m.role]}{m.text}{end}\n")
    if text == "prompt":
        parts.append(TULU_TAGS["assistant"])
    return "".join(parts)


def chat_text(messages: Sequence[Message], text: str, tokenizer: Any) -> str:
    """The tokenizer's chat template of `messages` (`prompt`: up to the first answer, with the generation
    prompt)."""
    if not getattr(tokenizer, "chat_template", None):
        raise OptionError("template 'chat' needs a tokenizer with a chat template (use template 'tulu')")
    if text == "prompt":
        first = next((i for i, m in enumerate(messages) if m.role == "assistant"), len(messages))
        messages = messages[:first]
    turns = [{"role": m.role, "content": m.text} for m in messages]
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=text == "prompt")


def rademacher(blocks: int, dim: int, out: int, seed: int = 0) -> np.ndarray:
    """CRDS-R's projection: `blocks` independent (dim x out) matrices of +-1/sqrt(out) (float32), from
    `numpy.random.default_rng(seed)`; block j projects layer j."""
    signs = np.random.default_rng(seed).integers(0, 2, size=(blocks, dim, out), dtype=np.int8)
    return ((2.0 * signs - 1.0) / np.sqrt(out)).astype(np.float32)


def project_layers(pooled: Sequence[Any], matrices: Any) -> Any:
    """Concatenate each layer's pooled vectors (batch x dim) after its own projection (`matrices`, blocks x
    dim x out, a tensor), or as they are when `matrices` is None."""
    import torch

    if matrices is None:
        return torch.cat(list(pooled), dim=1)
    return torch.cat([v @ matrices[j] for j, v in enumerate(pooled)], dim=1)


def weighted_mean(hidden: Any, lengths: Any) -> Any:
    """Position-weighted means of right-padded hidden states (batch, width, dim): token t (1-based) of a
    sequence of L tokens weighs t / (L (L + 1) / 2); pads weigh 0. float32."""
    import torch

    width = hidden.shape[1]
    pos = torch.arange(1, width + 1, device=hidden.device, dtype=torch.float32).unsqueeze(0)
    w = torch.where(pos <= lengths.unsqueeze(1), pos, torch.zeros_like(pos))
    w = w / w.sum(dim=1, keepdim=True)
    return torch.einsum("bt,btd->bd", w, hidden.float())


@register("score", "representation")
@dataclass
class Representation(ModelRuntime):
    """RDS+ representations: adds `column` (position-weighted mean of a layer's hidden states, unit
    length) and `<column>_reason`."""

    chunks: ClassVar[tuple[int, int]] = (512, 512)  # examples per chunk on a CPU, a GPU (`chunk_size` unset)

    model: ModelLike = EMBEDDED  # a causal LM spec (as `load_causal_lm`) or a `LoadedModel`
    text: str = "whole"  # whole | prompt
    template: str = "tulu"  # tulu | chat
    layer: int = -1  # which hidden state: -1 the last (after the final norm), 0 the embeddings
    layers: tuple[int, ...] | None = None  # several hidden states, concatenated (CRDS-R); instead of `layer`
    project: int | None = None  # a Rademacher projection to this many dimensions (CRDS-R)
    seed: int = 0  # the projection's seed
    column: str = "representation"
    max_length: int | None = None  # tokens per example [2048]
    columns: ClassVar[dict[str, str | None]] = {
        "representation": "representation_reason",
        "representation_reason": None,
    }  # per instance: `column`
    name: str = field(default="representation", init=False)

    def __post_init__(self) -> None:
        if self.text not in TEXTS:
            raise OptionError(f"representation text must be one of {', '.join(TEXTS)}, got {self.text!r}")
        if self.template not in TEMPLATES:
            raise OptionError(f"representation template must be one of {', '.join(TEMPLATES)}, got {self.template!r}")
        check_at_least(self, chunk_size=1, max_length=1)
        if not self.column.isidentifier():
            raise OptionError(f"column must be a plain name, got {self.column!r}")
        if self.layers is not None:
            self.layers = tuple(int(x) for x in self.layers)
            if not self.layers or len(set(self.layers)) != len(self.layers):
                raise OptionError(f"layers must name distinct hidden states, got {list(self.layers)}")
            if self.layer != -1:
                raise OptionError("give layer (one hidden state) or layers (several), not both")
        if self.project is not None and (self.project < 1 or self.project % len(self.hidden_states)):
            raise OptionError(
                f"project {self.project}: a positive multiple of the {len(self.hidden_states)} layers (each gets an "
                "equal share of the dimensions)"
            )

    @property
    def hidden_states(self) -> tuple[int, ...]:
        """The hidden states pooled: `layers`, else `layer`."""
        return self.layers if self.layers is not None else (self.layer,)
        self.columns = {self.column: f"{self.column}_reason", f"{self.column}_reason": None}

    # -- model ---------------------------------------------------------------------------------------
    def _meta(self) -> None:
        """Source, width, device and dtype from the model's files: enough for the schema and the cache key,
        so a fully cached run never loads the weights."""
        if hasattr(self, "_dim"):
            return
        from ..models import LoadedModel, choose_device, choose_dtype, resolve

        if isinstance(self.model, LoadedModel):
            lm = self.model
            source, device, dtype, cfg = lm.source, lm.device, lm.dtype, lm.model.config
        else:
            from transformers import AutoConfig

            source = resolve(self.model)
            device = choose_device(self.device)
            dtype = choose_dtype(self.dtype, device)
            cfg = AutoConfig.from_pretrained(source.path, trust_remote_code=self.trust_remote_code)
        cfg = getattr(cfg, "get_text_config", lambda: cfg)()
        layers = int(cfg.num_hidden_layers)
        for layer in self.hidden_states:
            if not -(layers + 1) <= layer <= layers:
                raise OptionError(f"layer {layer}: the model has hidden states 0..{layers} (or -1 for the last)")
        self._source, self._device, self._dtype = source, device, str(dtype)
        self._hidden = int(cfg.hidden_size)
        self._dim = self.project or self._hidden * len(self.hidden_states)

    def load(self) -> Any:
        if self._lm is None:
            self._meta()
        return super().load()

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        self._meta()
        return pa.schema([(self.column, pa.list_(pa.float32(), self._dim)), (f"{self.column}_reason", pa.string())])

    def config(self) -> dict[str, Any]:
        self._meta()
        return {
            "scorer": "representation/1",
            "pooling": "position-weighted mean",
            "model": self._source.fingerprint,
            "dtype": self._dtype,
            "device": self._device.split(":")[0],
            "text": self.text,
            "template": self.template,
            "layer": self.layer,
            "max_length": self.max_length or MAX_LENGTH,
            "column": self.column,
            **self._crds_config(),
        }

    def _crds_config(self) -> dict[str, Any]:
        """Layers and projection, in the key only when set (one layer's key is as before)."""
        out: dict[str, Any] = {}
        if self.layers is not None:
            out["layers"] = list(self.layers)
        if self.project is not None:
            out.update(project=self.project, projection="rademacher per layer", seed=self.seed)
        return out

    def cache_key(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        self._meta()
        which = "last layer" if self.layer == -1 else f"hidden state {self.layer}"
        if self.layers is not None:
            which = f"hidden states {', '.join(map(str, self.layers))} concatenated"
        if self.project is not None:
            which += f", Rademacher projection to {self.project} (seed {self.seed})"
        return (
            f"{self._source.name} ({which}, position-weighted mean, {self._dim}-d, {self._dtype}, {self._device}), "
            f"{self.template} {self.text} text, max_length {self.max_length or MAX_LENGTH} -> {self.column}"
        )

    # -- encoding ------------------------------------------------------------------------------------
    def text_of(self, example: Example) -> str:
        tok = self.load().tokenizer
        if self.template == "chat":
            return chat_text(example.messages, self.text, tok)
        return tulu_text(example.messages, self.text, tok.eos_token or "")

    def encode(self, texts: Sequence[str], advance: Callable[[float], None] | None = None) -> np.ndarray:
        """Unit vectors (len(texts) x dim, float32), batched by padded tokens, longest first."""
        import torch

        from .losses import batch_tokens_for, plan_batches

        advance = advance or (lambda _n: None)
        lm = self.load()
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        tok = lm.tokenizer
        ids = tok(list(texts), truncation=True, max_length=self.max_length or MAX_LENGTH).input_ids
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        decoder = lm.model.get_decoder()
        matrices = None
        if self.project is not None:
            blocks = len(self.hidden_states)
            matrices = torch.from_numpy(rademacher(blocks, self._hidden, self.project // blocks, self.seed))
            matrices = matrices.to(lm.device)
        for batch in plan_batches([len(x) for x in ids], batch_tokens_for(lm.device, self.batch_tokens)):
            lengths = torch.tensor([len(ids[i]) for i in batch])
            width = int(lengths.max())
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):  # right padding: causal attention never lets a token see a pad
                input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1
            with torch.inference_mode():
                res = decoder(
                    input_ids=input_ids.to(lm.device), attention_mask=mask.to(lm.device), output_hidden_states=True
                )
                n = lengths.to(lm.device)
                pooled = project_layers([weighted_mean(res.hidden_states[i], n) for i in self.hidden_states], matrices)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
            out[batch] = pooled.cpu().numpy()
            advance(len(batch))
        return out

    def score(
        self,
        examples: Sequence[Example],
        skip: set[str] | frozenset[str] = frozenset(),
        advance: Callable[[float], None] | None = None,
    ) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Yield (content_hash, {column, column_reason}) lists, chunk by chunk, for examples not in `skip`."""
        advance = advance or (lambda _n: None)
        reason = f"{self.column}_reason"
        for part in todo_chunks(examples, skip, chunk_for(self, self.load().device)):
            vecs = self.encode([self.text_of(ex) for ex in part], advance)
            yield [(ex.content_hash, {self.column: v.tolist(), reason: None}) for ex, v in zip(part, vecs, strict=True)]


# -- targets: the examples the user wants the model to be good at ------------------------------------------
class TargetParams(StrictModel):
    """The `targets` fit step: a target file, its task field, and the representation's settings (those of
    the pool's `representation` step, so that both are in one space)."""

    target: DataRef
    target_task_field: str | None = None
    target_text: str = "prompt"
    format: str | None = None
    model: ModelRef = EMBEDDED
    template: str = "tulu"
    layer: int = -1
    layers: list[int] | None = None
    project: int | None = None
    seed: int = 0
    max_length: int | None = None
    batch_tokens: int | None = None
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False


@register("fit", "targets", params=TargetParams)
def fit_targets(
    dataset: Any, params: Any, *, cache_dir: Any = None, progress: bool = True, log: Callable | None = None
) -> str:
    """Encode the target file (`params.target`) as the pool is encoded; save `{vectors, tasks}` as an
    .npz artifact (cached by the targets' content and the representation's configuration) and return
    its path. `dataset` (the pool) is not used: the targets come from their own file."""
    from ..atomic import atomic_path
    from ..data.targets import read_targets
    from ..models import cache_root, use_cache_root

    log = log or (lambda _m: None)
    with use_cache_root(cache_dir):
        targets = read_targets(params.target, task_field=params.target_task_field, format=params.format)
        scorer = Representation(
            model=params.model, text=params.target_text, template=params.template, layer=params.layer,
            layers=tuple(params.layers) if params.layers is not None else None, project=params.project, seed=params.seed,
            max_length=params.max_length, batch_tokens=params.batch_tokens, dtype=params.dtype,
            device=params.device, trust_remote_code=params.trust_remote_code,
        )  # fmt: skip
        h = hashlib.sha256(json.dumps({"kind": "targets/1", **scorer.config()}, sort_keys=True).encode())
        for ex, task in zip(targets.examples, targets.tasks, strict=True):
            h.update(f"{ex.content_hash}\t{task}\n".encode())
        path = Path(cache_root()) / "artifacts" / f"targets-{h.hexdigest()[:16]}.npz"
        n_tasks = len(set(targets.tasks))
        if path.exists():
            log(f"{len(targets.examples)} targets in {n_tasks} tasks: cached ({path})")
            return str(path)
        vectors = scorer.encode([scorer.text_of(ex) for ex in targets.examples])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, vectors=vectors, tasks=np.asarray(targets.tasks, dtype=str))
        log(f"{len(targets.examples)} targets in {n_tasks} tasks: encoded ({path})")
        return str(path)


def load_targets(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, task labels) of a `targets` artifact."""
    with np.load(path) as z:
        return np.asarray(z["vectors"], dtype=np.float32), np.asarray(z["tasks"]).astype(str)
