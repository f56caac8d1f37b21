"""SCAR: a trained style-consistency ranker's score for each example (column `scar`, higher is better).

Li et al., 2024, "SCAR: Data Selection via Style Consistency-Aware Response Ranking for Efficient
Instruction Tuning of Large Language Models" (arXiv 2406.10882). The ranker (`models/scar.py`) is a
folder trained by `instructsift train-scar` or a released SCAR checkpoint (`lizhuang144/scar-gte-base`,
...), loaded without remote code.

Each answer turn is ranked with the user turn just before it as its instruction (the instruction and its
input, as `Message.text` joins them; a system message is not read). A conversation's score combines its
turns' scores by `turns`: `mean` (default: every answer counts alike), `min` (its weakest answer),
`first` or `last`. Pairs are sorted by length and batched; the result does not depend on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError
from ..data.example import Example
from ..registry import ModelLike, register
from .base import MODEL, Advance, Chunks, Resources, Skip, config_hash

TURNS = ("mean", "min", "first", "last")
MAX_LENGTH = 512  # tokens per instruction and per answer, as the reference scores


def turn_pairs(example: Example) -> list[tuple[str, str]]:
    """(instruction, answer) for every answer turn: the user turn just before it, and the answer."""
    pairs: list[tuple[str, str]] = []
    last_user = ""
    for m in example.messages:
        if m.role == "user":
            last_user = m.text
        elif m.role == "assistant":
            pairs.append((last_user, m.content))
    return pairs


def combine(scores: Sequence[float], how: str) -> float:
    if how == "mean":
        return float(sum(scores) / len(scores))
    if how == "min":
        return float(min(scores))
    return float(scores[0] if how == "first" else scores[-1])


def score_pairs(
    ranker: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int = MAX_LENGTH,
    batch_size: int = 32,
    advance: Callable[[float], None] | None = None,
) -> list[float]:
    """The ranker's score of each (instruction, answer) pair, in order; sorted by length and batched."""
    import torch

    if not pairs:
        return []
    tok, model = ranker.tokenizer, ranker.model
    device = next(model.parameters()).device
    ins = tok([p[0] for p in pairs], truncation=True, max_length=max_length)["input_ids"]
    ans = tok([p[1] for p in pairs], truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(pairs)), key=lambda i: (-(len(ins[i]) + len(ans[i])), i))
    out = [math.nan] * len(pairs)
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        a = tok.pad({"input_ids": [ins[i] for i in idx]}, return_tensors="pt")
        b = tok.pad({"input_ids": [ans[i] for i in idx]}, return_tensors="pt")
        with torch.inference_mode():
            scores, _, _ = model(
                a["input_ids"].to(device),
                a["attention_mask"].to(device),
                b["input_ids"].to(device),
                b["attention_mask"].to(device),
            )
        for i, s in zip(idx, scores.float().cpu().tolist(), strict=True):
            out[i] = float(s)
        if advance is not None:
            advance(len(idx))
    return out


@register("score", "scar")
@dataclass
class Scar:
    """SCAR ranker scorer: adds `scar` (the style-consistency score, higher is better) and `scar_reason`."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs

    ranker: ModelLike = None  # a ranker folder or hub id, or a `models.scar.LoadedRanker`
    turns: str = "mean"  # how a conversation's answer turns combine: mean, min, first, last
    max_length: int = MAX_LENGTH  # tokens per instruction and per answer
    batch_size: int = 32  # pairs per forward pass
    device: str = "auto"
    dtype: str = "float32"
    chunk_size: int = 512  # examples per yielded (and cached) chunk
    columns: ClassVar[dict[str, str | None]] = {"scar": "scar_reason", "scar_reason": None}
    name: str = field(default="scar", init=False)
    _loaded: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.ranker is None or self.ranker == "":
            raise OptionError("the scar scorer needs a ranker: a folder from train-scar or a SCAR checkpoint")
        if self.turns not in TURNS:
            raise OptionError(f"turns must be one of {', '.join(TURNS)}, got {self.turns!r}")
        if self.max_length < 2 or self.batch_size < 1 or self.chunk_size < 1:
            raise OptionError("max_length must be at least 2, batch_size and chunk_size at least 1")

    def load(self) -> Any:
        if self._loaded is None:
            from ..models.device import choose_device, choose_dtype
            from ..models.scar import LoadedRanker, load_ranker

            if isinstance(self.ranker, LoadedRanker):
                self._loaded = self.ranker
            else:
                device = choose_device(self.device)
                self._loaded = load_ranker(self.ranker, device, choose_dtype(self.dtype, device))
        return self._loaded

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("scar", pa.float64()), ("scar_reason", pa.string())])

    def plan(self) -> tuple[Any, str, Any, Any]:
        """The ranker's folder, encoder name, dtype and torch device: those of the loaded ranker, or read
        from its config.json with the dtype and device `load` would choose, without loading it (a folder
        that is no ranker is loaded, for its error)."""
        import json

        import torch

        from ..models.device import choose_device, choose_dtype
        from ..models.scar import MODEL_TYPE, LoadedRanker, ranker_folder

        if self._loaded is None and not isinstance(self.ranker, LoadedRanker):
            folder = ranker_folder(self.ranker)
            try:
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                config = {}
            if config.get("model_type") == MODEL_TYPE:
                device = choose_device(self.device)
                where = torch.device(device)
                if where.type == "cuda" and where.index is None:  # where `.to("cuda")` puts the weights
                    where = torch.device("cuda", torch.cuda.current_device())
                return folder, str(config.get("encoder_name", "")), choose_dtype(self.dtype, device), where
        loaded = self.load()
        param = next(loaded.model.parameters())
        return loaded.path, loaded.encoder_name, param.dtype, param.device

    def cache_key(self) -> str:
        from ..models.fingerprint import folder_fingerprint

        path, _, dtype, device = self.plan()
        config = {
            "scorer": "scar/1",
            "ranker": folder_fingerprint(path),
            "dtype": str(dtype),
            "device": device.type,
            "turns": self.turns,
            "max_length": self.max_length,
        }
        return config_hash(config)

    def describe(self) -> str:
        path, encoder_name, dtype, device = self.plan()
        return (
            f"SCAR ranker {path} (encoder {encoder_name or '?'}, {dtype}, {device}), "
            f"turns {self.turns}, max_length {self.max_length} -> scar"
        )

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        """Yield (content_hash, {scar, scar_reason}) lists, chunk by chunk, for examples not in `skip`."""
        advance = advance or (lambda _n: None)
        ranker = self.load()
        for lo in range(0, len(examples), self.chunk_size):
            part = [ex for ex in examples[lo : lo + self.chunk_size] if ex.content_hash not in skip]
            if not part:
                continue
            per_example = [[(q, a) for q, a in turn_pairs(ex) if a.strip()] for ex in part]
            flat = [p for ps in per_example for p in ps]
            share = len(part) / max(1, len(flat))  # progress counts examples
            scores = score_pairs(
                ranker,
                flat,
                max_length=self.max_length,
                batch_size=self.batch_size,
                advance=lambda n, share=share: advance(n * share),
            )
            rows: list[tuple[str, dict[str, Any]]] = []
            at = 0
            for ex, ps in zip(part, per_example, strict=True):
                mine = scores[at : at + len(ps)]
                at += len(ps)
                if not ps:
                    rows.append((ex.content_hash, {"scar": None, "scar_reason": "no non-empty answer to rank"}))
                elif any(not math.isfinite(s) for s in mine):
                    rows.append((ex.content_hash, {"scar": None, "scar_reason": "the ranker gave a non-finite score"}))
                else:
                    rows.append((ex.content_hash, {"scar": combine(mine, self.turns), "scar_reason": None}))
            if not flat:
                advance(len(part))
            yield rows
