"""What every scorer provides. Scorers look at examples and add named columns; they never decide.

The engine caches each scorer's results by (example content hash, `cache_key()`), so a scorer must
put into its key everything that changes its numbers (model fingerprint, dtype, template, ...).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from ..data.example import Example

Skip = AbstractSet[str]  # the content hashes a scorer is not asked for (cached already)
Advance = Callable[[float], None] | None  # told how many examples' worth of work is done
Chunks = Iterator[list[tuple[str, dict[str, Any]]]]  # what `score` yields: (content_hash, {column: value}) lists


@dataclass(frozen=True)
class Resources:
    """What a scorer asks of the machine it runs on (as data-juicer's ops carry accelerator and batch hints),
    declared by its class as `resources` and read by the engines, never decided there. A scorer that holds a
    model (`model`) is run where the model is loaded once: the Ray engine gives it an actor pool, each actor
    taking `gpus` of a GPU where the cluster has GPUs (0: its actors run on CPUs only), else a share of the
    free CPUs; any other scorer runs as plain Ray tasks of `cpus` CPUs each. The default is a light scorer.
    (An optional package a step needs is its class's `requires`, which a run checks before any work.)"""

    model: bool = False  # holds a model, loaded once per worker: an actor pool, not plain tasks
    gpus: float = 0.0  # GPU share per actor where the cluster has GPUs: a fraction, or a whole number
    cpus: float = 0.5  # CPUs per plain task (a model's actors are sized from the free CPUs instead)

    def __post_init__(self) -> None:
        if self.gpus < 0 or (self.gpus > 1 and self.gpus != int(self.gpus)):
            raise ValueError(f"gpus={self.gpus}: a share of one GPU (0 to 1) or a whole number of GPUs")
        if self.gpus and not self.model:
            raise ValueError("a GPU share is for a scorer that holds a model (model=True)")
        if self.cpus <= 0:
            raise ValueError(f"cpus={self.cpus}: a plain task needs some CPU")


LIGHT = Resources()  # rules, language, MinHash, an API judge: plain tasks of half a CPU
MODEL = Resources(model=True, gpus=1.0)  # a model scorer: an actor pool, one GPU per actor where there are GPUs


def resources_of(scorer: Any) -> Resources:
    """What `scorer` declares it needs (its `resources`); a scorer that declares nothing is light, and one
    told to run on the CPU (its `device` option) asks for no GPU share."""
    declared = getattr(scorer, "resources", LIGHT)
    if not isinstance(declared, Resources):
        raise TypeError(f"{type(scorer).__name__}.resources: a scoring.base.Resources, not {declared!r}")
    if declared.gpus and device_kind(scorer, gpu=True) == "cpu":
        return replace(declared, gpus=0.0)
    return declared


class Scorer(Protocol):
    name: str  # also the cache folder's prefix
    # Every column the scorer writes, each mapped to the column that says why its value is missing; None
    # where a null is a value (no language to identify) or the column is bookkeeping (a reason column,
    # token counts). A class-level dict; a scorer whose column names follow its options (`embed`'s
    # `column`, `unieval`'s dimensions) sets it per instance. Accounting (what is unscored), selection
    # (the reason a row without a score is dropped) and the engines read it, never a name pattern.
    columns: dict[str, str | None]
    # Examples per yielded (and cached) chunk: a `chunk_size` field whose default is a number (the same on
    # every device), or `chunk_size: int | None = None` and a class-level `chunks = (CPU, GPU)`, its chunk
    # per device kind. `chunk_for(scorer, device)` reads it: the scorer's own `score` and both engines.
    # What it asks of the machine (a class-level `Resources`: a model held in an actor pool, its GPU share,
    # a plain task's CPUs); `resources_of(scorer)` reads it, and the Ray engine plans from nothing else.
    resources: Resources

    @property
    def schema(self) -> Any:
        """A pyarrow schema of the columns this scorer adds (names unique across scorers)."""

    def cache_key(self) -> str:
        """A short hash of the configuration; loading a model to fingerprint it is fine."""

    def describe(self) -> str:
        """One line for the log: model, dtype, device, template."""

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        """Yield lists of (content_hash, {column: value}) for examples whose hash is not in `skip`,
        in deterministic chunks; call `advance(n)` as n examples' worth of work completes.
        A value that cannot be computed is None with a reason in the scorer's reason column.

        Optional: `cacheable(row) -> bool`; rows it rejects (e.g. a judge request that got no reply)
        are used in this run but not cached, so the next run scores them again."""


@dataclass(kw_only=True)
class ModelRuntime:
    """Where and how a model scorer's model runs, declared once for the scorers that take all of it (IFD,
    instruction loss, the local judge, DEITA). Keyword-only, so a scorer's own fields keep their places
    in its constructor and in the options it lists."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs
    chunks: ClassVar[tuple[int, int]] = (512, 8192)  # examples per chunk on a CPU, a GPU (`chunk_size` unset)

    dtype: str = "auto"
    device: str = "auto"
    batch_tokens: int | None = None  # padded tokens per batch [CPU 8192, GPU 65536]
    chunk_size: int | None = None  # examples per yielded (and cached) chunk [`chunks`]
    trust_remote_code: bool = False
    _lm: Any = field(default=None, init=False, repr=False)  # the causal LM, once `load()` loaded it

    def load(self) -> Any:
        """The scorer's causal LM (`load_lm`: a `LoadedModel` is reused as it is), loaded once; then
        `_prepare(lm)` sets up what the scorer derives from it."""
        if self._lm is None:
            self._lm = load_lm(self)
            self._prepare(self._lm)
        return self._lm

    def _prepare(self, lm: Any) -> None:
        """What a scorer derives from its model once loaded (a loss head, token ids): nothing by default."""


class ResolvesModel:
    """Mixin of a step that names a model (`model`) and keys its cache on the model's fingerprint:
    `source()` resolves it once (kept in the step's `_source` field), without loading it."""

    def source(self) -> Any:
        """The model resolved (its fingerprint): enough for the key, without loading it."""
        if self._source is None:  # type: ignore[attr-defined]
            from ..models import resolve

            self._source = resolve(self.model)  # type: ignore[attr-defined]
        return self._source  # type: ignore[attr-defined]


def config_hash(config: Any) -> str:
    """A `cache_key()`: 16 hex digits of the SHA-256 of the configuration as sorted JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def load_lm(scorer: Any) -> Any:
    """The causal LM that a scorer's `model`, `dtype`, `device` and `trust_remote_code` name (a `LoadedModel`
    is used as it is); for a scorer's lazy `load()`."""
    from ..models import load_causal_lm

    return load_causal_lm(
        scorer.model, dtype=scorer.dtype, device=scorer.device, trust_remote_code=scorer.trust_remote_code
    )


def lm_config(lm: Any) -> dict[str, str]:
    """What a loaded model puts into a scorer's cache key: its weights' fingerprint, dtype and device kind."""
    return {"model": lm.source.fingerprint, "dtype": str(lm.dtype), "device": lm.device.split(":")[0]}


def lm_plan(scorer: Any, spec: Any = None) -> Any:
    """The `LoadedModel` a scorer has loaded (its `_lm`), or the one its `model` (or `spec`) names, or
    what `load_pretrained` would give it without loading anything: the model's resolved source (its
    fingerprint), and the dtype and device the loader would choose (a `ModelPlan`, remembered on the
    scorer). A fully cached run thus computes its cache key and its log line without transformers or
    the weights."""
    from ..models import LoadedModel, choose_device, choose_dtype, resolve

    if spec is None:
        spec = scorer.model
        loaded = getattr(scorer, "_lm", None)
        if loaded is not None:
            return loaded
    if isinstance(spec, LoadedModel):
        return spec
    plans = scorer.__dict__.setdefault("_lm_plans", {})
    if str(spec) not in plans:
        device = choose_device(scorer.device)
        plans[str(spec)] = ModelPlan(resolve(spec), choose_dtype(scorer.dtype, device), device)
    return plans[str(spec)]


def lm_key(scorer: Any, spec: Any = None) -> dict[str, str]:
    """What a scorer's causal LM puts into its cache key, without loading it: `lm_config` of the model
    `load_lm(scorer)` gives (the same key, so existing caches stay valid)."""
    return lm_config(lm_plan(scorer, spec))


def lm_about(scorer: Any, spec: Any = None) -> str:
    """The model part of a scorer's log line, without loading it: "NAME (DTYPE, DEVICE)"."""
    plan = lm_plan(scorer, spec)
    return f"{plan.source.name} ({plan.dtype}, {plan.device})"


def lm_tokenizer(scorer: Any, spec: Any = None) -> Any:
    """The tokenizer of the model `lm_plan(scorer, spec)` describes: the loaded model's, or the tokenizer
    alone as `load_pretrained` loads it (remembered on the scorer), for a key that needs it (a chat
    template, the score tokens' ids) without the weights."""
    plan = lm_plan(scorer, spec)
    if not isinstance(plan, ModelPlan):
        return plan.tokenizer
    if getattr(plan, "tokenizer", None) is None:
        from transformers import AutoTokenizer

        plan.tokenizer = AutoTokenizer.from_pretrained(plan.source.path, trust_remote_code=scorer.trust_remote_code)
    return plan.tokenizer


@dataclass
class ModelPlan:
    """What loading a model would give, but the weights and tokenizer: its source, dtype and device."""

    source: Any  # a `models.ModelSource`
    dtype: Any  # a torch dtype
    device: str
    tokenizer: Any = None  # loaded by `lm_tokenizer` where a key needs it


def lm_cache_key(scorer: Any, name: str, **settings: Any) -> str:
    """A causal-LM scorer's `cache_key()`: its name and version (`ifd/1`), the model (`lm_key`, without
    loading it) and the settings that change its numbers."""
    return config_hash({"scorer": name, **lm_key(scorer), **settings})


def score_reasons(columns: Mapping[str, str | None]) -> dict[str, str]:
    """The score columns of a declaration, each with its reason column."""
    return {c: r for c, r in columns.items() if r}


def declared_reasons(name: str) -> dict[str, str]:
    """The class-level declaration of the registered scorer `name` (score column -> reason column)."""
    from ..registry import get

    return score_reasons(getattr(get("score", name).target, "columns", None) or {})


def chunk_option(scorer: Any) -> tuple[int | None, bool]:
    """The scorer's `chunk_size` (None: its device's) and whether it differs from its class's default
    (the user set it)."""
    import dataclasses

    size = getattr(scorer, "chunk_size", None)
    defaults = {f.name: f.default for f in dataclasses.fields(scorer)} if dataclasses.is_dataclass(scorer) else {}
    return size, size is not None and size != defaults.get("chunk_size")


def chunk_for(scorer: Any, device: str) -> int:
    """Examples per chunk `scorer` cuts on `device` (a torch device such as "cuda:0", or its kind: "cpu",
    "cuda"): its `chunk_size` when set, else its declared `chunks` (CPU, GPU). An `AttributeError` for a
    scorer that declares neither."""
    size = getattr(scorer, "chunk_size", None)
    if size:
        return int(size)
    cpu, gpu = scorer.chunks
    return int(gpu if str(device).startswith("cuda") else cpu)


def device_kind(scorer: Any, gpu: bool) -> str:
    """The device `scorer` runs on where a GPU is (`gpu`) or is not free for it: the device its `device`
    option names, else cuda or cpu (what "auto" picks)."""
    device = getattr(scorer, "device", None)
    if isinstance(device, str) and device not in ("", "auto"):
        return device
    return "cuda" if gpu else "cpu"
