"""The SCAR style-consistency ranker's network, and its folder format (Li et al., arXiv 2406.10882).

One shared encoder reads the instruction and the response. From its outputs:

- the *instructional surprisal* ("creativity") representation: Linear(2h->l) - ReLU - Linear(l->h) over
  [instruction vector ; response vector], each vector the encoder's pooler output (CLS state without one);
- the *linguistic form* ("presentation") representation: the max over the response's real tokens of the
  last hidden states;
- the score: Linear(2h->l) - ReLU - Linear(l->1) over [surprisal ; form].

Parameter names match the reference code (zhuang-li/SCAR, PyPI `scar-tool`): `encoder.*`,
`relation_network.{0,2}.*`, `output_layer.{0,2}.*`, so its released checkpoints load
(`lizhuang144/scar-gte-base`, ...). A ranker folder is `config.json` (`model_type: style_ranker`,
`encoder_name`, `hidden_dim`, `linear_dim`), `model.safetensors`, and the tokenizer's files. Folders
written here add `encoder_config.json` (the encoder's architecture, so loading needs nothing else);
for a reference checkpoint the encoder's config comes from `encoder_name` (a folder or a hub id).
Weights load from safetensors only: a folder with nothing but `pytorch_model.bin` (a pickle) is refused.
The encoder is built from its config without `trust_remote_code`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path
from ..data.errors import MissingFileError

MODEL_TYPE = "style_ranker"
WEIGHTS = "model.safetensors"
ENCODER_CONFIG = "encoder_config.json"
MARKER = "instructsift-model.json"  # lets `--overwrite` replace a folder written here


def pooled(output: Any) -> torch.Tensor:
    """The encoder's pooler output, or its first (CLS) token's last hidden state where it has none."""
    pooler = getattr(output, "pooler_output", None)
    return pooler if pooler is not None else output.last_hidden_state[:, 0]


def masked_max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the real tokens (mask 1) of each row's hidden states: (B, T, h) -> (B, h)."""
    fill = torch.finfo(hidden.dtype).min
    return hidden.masked_fill(mask.unsqueeze(-1) == 0, fill).max(dim=1).values


class ScarRanker(nn.Module):
    """Encoder + surprisal MLP (`relation_network`) + score MLP (`output_layer`)."""

    def __init__(self, encoder: nn.Module, hidden_dim: int, linear_dim: int) -> None:
        super().__init__()
        width = int(encoder.config.hidden_size)
        if hidden_dim != width:
            raise ValueError(f"hidden_dim {hidden_dim} differs from the encoder's hidden size {width}")
        self.encoder = encoder
        self.hidden_dim, self.linear_dim = hidden_dim, linear_dim
        self.relation_network = nn.Sequential(
            nn.Linear(2 * hidden_dim, linear_dim), nn.ReLU(), nn.Linear(linear_dim, hidden_dim)
        )
        self.output_layer = nn.Sequential(nn.Linear(2 * hidden_dim, linear_dim), nn.ReLU(), nn.Linear(linear_dim, 1))

    def represent(
        self, ins_ids: torch.Tensor, ins_mask: torch.Tensor, ans_ids: torch.Tensor, ans_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(surprisal, form), each (B, h)."""
        ins = self.encoder(input_ids=ins_ids, attention_mask=ins_mask)
        ans = self.encoder(input_ids=ans_ids, attention_mask=ans_mask)
        surprisal = self.relation_network(torch.cat((pooled(ins), pooled(ans)), dim=1))
        form = masked_max(ans.last_hidden_state, ans_mask)
        return surprisal, form

    def forward(
        self, ins_ids: torch.Tensor, ins_mask: torch.Tensor, ans_ids: torch.Tensor, ans_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(scores (B,), surprisal (B, h), form (B, h))."""
        surprisal, form = self.represent(ins_ids, ins_mask, ans_ids, ans_mask)
        score = self.output_layer(torch.cat((surprisal, form), dim=1)).squeeze(-1)
        return score, surprisal, form


@dataclass
class LoadedRanker:
    model: ScarRanker
    tokenizer: Any
    path: Path
    encoder_name: str


def build_ranker(
    encoder_spec: str | Path, linear_dim: int = 1024, *, pretrained: bool = True
) -> tuple[ScarRanker, Any]:
    """A new ranker over an encoder folder (its weights when `pretrained`), and the encoder's tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .loader import hf_bars_off

    hf_bars_off()
    enc_config = AutoConfig.from_pretrained(str(encoder_spec), trust_remote_code=False)
    if pretrained:
        encoder = AutoModel.from_pretrained(str(encoder_spec), trust_remote_code=False)
    else:
        encoder = AutoModel.from_config(enc_config)
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_spec))
    return ScarRanker(encoder, int(enc_config.hidden_size), linear_dim), tokenizer


def _encoder_config(folder: Path, config: dict[str, Any]) -> Any:
    """The encoder's architecture: `encoder_config.json` beside the ranker, else `encoder_name`'s config."""
    from transformers import AutoConfig

    own = folder / ENCODER_CONFIG
    if own.exists():
        data = json.loads(own.read_text(encoding="utf-8"))
        model_type = data.pop("model_type", None)
        if not model_type:
            raise MissingFileError(f"{own}: no model_type")
        return AutoConfig.for_model(model_type, **data)
    name = config.get("encoder_name")
    if not name:
        raise MissingFileError(f"{folder / 'config.json'}: no encoder_name and no {ENCODER_CONFIG}")
    try:
        return AutoConfig.from_pretrained(str(name), trust_remote_code=False)
    except ValueError as e:  # a model type that needs remote code
        raise MissingFileError(f"{folder}: the encoder {name!r} cannot be built without remote code ({e})") from None
    except OSError as e:
        raise MissingFileError(f"{folder}: cannot find the config of its encoder {name!r} ({e})") from None


def _state_dict(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = folder / WEIGHTS
    if single.exists():
        return load_file(str(single))
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        out: dict[str, torch.Tensor] = {}
        for name in files:
            out.update(load_file(str(folder / name)))
        return out
    if (folder / "pytorch_model.bin").exists():
        raise MissingFileError(
            f"{folder}: holds only pytorch_model.bin (a pickle), which instructsift does not load; "
            "save it as model.safetensors first"
        )
    raise MissingFileError(f"{folder}: no {WEIGHTS}")


def ranker_folder(spec: str | Path) -> Path:
    """A ranker folder: a local path, or a hub id downloaded (configs, safetensors, tokenizer) into the HF cache."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise MissingFileError(f"{spec}: not a ranker folder")
    if str(spec).startswith((".", "/", "~")):
        raise MissingFileError(f"{spec}: no such ranker folder")
    from .loader import resolve

    return Path(resolve(str(spec)).path)


def load_ranker(spec: str | Path, device: str = "cpu", dtype: Any = None) -> LoadedRanker:
    """Load a ranker folder written here or by the reference code, in eval mode."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = ranker_folder(spec)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise MissingFileError(f"{folder}: no config.json (not a SCAR ranker folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != MODEL_TYPE:
        raise MissingFileError(f"{config_path}: model_type is {config.get('model_type')!r}, not {MODEL_TYPE!r}")
    enc_config = _encoder_config(folder, config)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder = AutoModel.from_config(enc_config)
    finally:
        hf_logging.set_verbosity(verbosity)
    try:
        model = ScarRanker(encoder, int(config.get("hidden_dim", 1024)), int(config.get("linear_dim", 1024)))
    except ValueError as e:
        raise MissingFileError(f"{config_path}: {e}") from None
    state = _state_dict(folder)
    missing, unexpected = model.load_state_dict(state, strict=False)
    persistent = set(model.state_dict())
    missing = [k for k in missing if k in persistent]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # a buffer older versions saved
    if missing or unexpected:
        raise MissingFileError(
            f"{folder}: weights do not fit the ranker (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if dtype is not None:
        model.to(dtype)
    model.to(device).eval()
    path, kwargs = _tokenizer_source(folder, config)
    hf_logging.set_verbosity_error()  # it reads config.json, whose model_type it does not know
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    return LoadedRanker(model, tokenizer, folder, str(config.get("encoder_name", "")))


def _tokenizer_source(folder: Path, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, AutoTokenizer kwargs) of a ranker's tokenizer: its own files, else its encoder's
    (`encoder_name` through `models.resolve_tokenizer`, as every model option's tokenizer)."""
    from .loader import resolve_tokenizer

    if (folder / "tokenizer_config.json").exists():
        return str(folder), {}
    name = config.get("encoder_name")
    if not name:
        raise MissingFileError(f"{folder}: no tokenizer files, and no encoder_name in config.json to take one from")
    path, kwargs, _ = resolve_tokenizer(str(name))
    return path, kwargs


def save_ranker(model: ScarRanker, tokenizer: Any, folder: str | Path, encoder_name: str) -> Path:
    """Write `model` as a ranker folder (config, encoder config, safetensors weights, tokenizer), atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    config = {
        "model_type": MODEL_TYPE,
        "architectures": ["StyleRanker"],
        "encoder_name": encoder_name,
        "hidden_dim": model.hidden_dim,
        "linear_dim": model.linear_dim,
    }
    enc = model.encoder.config.to_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder, directory=True) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / ENCODER_CONFIG).write_text(json.dumps(enc, indent=2, default=str) + "\n", encoding="utf-8")
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        tokenizer.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(json.dumps({"kind": "scar-ranker"}) + "\n", encoding="utf-8")
    return folder
