"""The compare recipe: `compare: {data, eval, methods, budget, ...}` (YAML) as a `CompareSpec`, read, checked
and written; `--set` options; the paths it names, relative to the recipe's folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator, model_validator

from ..data.errors import OptionError, with_prefix
from ..errors import UsageError
from ..models.embedded import EMBEDDED
from ..registry import StrictModel
from ..selection.size import Amount, one_of
from .winrate import JudgeSpec

ALL = "*"  # the `options` key whose options go to every method that takes them


def one_or_list(v: Any, empty: str, twice: str) -> Any:
    """A setting that takes one value or a list: a list of one is that value; an empty list, or one naming a
    value twice, is an error (`empty`, `twice`: what the error says)."""
    if not isinstance(v, list):
        return v
    if not v:
        raise ValueError(empty)
    if len(set(v)) != len(v):
        raise ValueError(f"{twice}: {v}")
    return v[0] if len(v) == 1 else v


class CompareSpec(StrictModel):
    """A whole comparison (the recipe form: a YAML mapping under `compare:`). Paths are relative to `base_dir`."""

    data: str
    split: str | None = Field(None, description="hub data: the split of `data` [train]")
    subset: str | None = Field(None, description="hub data: the subset (config) of `data`")
    revision: str | None = Field(None, description="hub data: a branch, tag or commit of `data`")
    eval: str | list[str] = Field(
        description="the held-out set, or several: a loss column per set (the first is the main one); a hub "
        "data set spells its split: ID[@REVISION][:SUBSET]:SPLIT"
    )
    methods: list[str] = Field(
        default_factory=list, description="methods by name, or LABEL=METHOD: an arm of METHOD with LABEL's options"
    )
    budget: int | float | list[int | float] | None = Field(
        None, description="examples per selection: a count, or a ratio of the data set (a list: a curve)"
    )
    budget_tokens: int | float | list[int | float] | None = Field(
        None, description="trained answer tokens per selection: a count, or a ratio of the data set's (a list: a curve)"
    )
    base: str = EMBEDDED
    random_seeds: int = Field(3, ge=0)
    seed: int = 0
    full: bool = False
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="method -> options ('*': all)")
    finetune: dict[str, Any] = Field(default_factory=dict, description="FinetuneConfig settings")
    eval_batch_tokens: int | None = Field(None, ge=1)
    eval_dtype: str = "auto"
    format: str | None = None
    on_error: str = "fail"
    cache_dir: str | None = None
    trials_dir: str | None = Field(
        None, description="finished trials shared between machines (a folder in git, a network disk): read and written"
    )
    allow_short: bool = False
    plot: bool = True
    output: str | None = None
    report: str | None = Field(None, description="an HTML report of the comparison (needs instructsift[report])")
    judge: JudgeSpec | None = Field(None, description="a judge server: win rate of each model's answers vs random's")
    target: str | None = Field(None, description="examples of the target tasks, for the target-aware methods (rds)")
    target_task_field: str | None = Field(None, description="the target records' task field [each row a task]")

    @field_validator("budget", "budget_tokens")
    @classmethod
    def _budget(cls, v: Any, info: Any) -> Any:
        for b in v if isinstance(v, list) else [] if v is None else [v]:
            Amount(b, "rows" if info.field_name == "budget" else "tokens", info.field_name)
        return one_or_list(v, "a list of budgets needs at least one", "a budget is listed twice")

    @field_validator("eval")
    @classmethod
    def _evals(cls, v: str | list[str]) -> str | list[str]:
        return one_or_list(v, "give at least one held-out set", "a held-out set is named twice")

    @property
    def evals(self) -> list[str]:
        return self.eval if isinstance(self.eval, list) else [self.eval]

    def amount(self) -> Amount:
        """This spec's one budget (of a curve: `budgets()` first), as an `Amount` of rows or tokens."""
        if self.budget is not None:
            return Amount(self.budget, "rows", "budget")  # type: ignore[arg-type]
        return Amount(self.budget_tokens, "tokens", "budget_tokens")  # type: ignore[arg-type]

    def budgets(self) -> list[CompareSpec]:
        """One spec per budget of a curve (itself for one budget)."""
        key = "budget" if self.budget is not None else "budget_tokens"
        values = getattr(self, key)
        if not isinstance(values, list):
            return [self]
        return [self.model_copy(update={key: b}) for b in values]

    @model_validator(mode="after")
    def _one_budget(self) -> CompareSpec:
        one_of({"budget": self.budget, "budget_tokens": self.budget_tokens})
        if self.target_task_field is not None and self.target is None:
            raise ValueError("target_task_field needs target")
        return self

    def finetune_config(self) -> Any:
        from ..train.finetune import FinetuneConfig

        known = {f for f in FinetuneConfig.__dataclass_fields__}
        unknown = [k for k in self.finetune if k not in known]
        if unknown:
            raise UsageError(f"finetune does not take {', '.join(unknown)} (it takes: {', '.join(sorted(known))})")
        return FinetuneConfig(**self.finetune)


def parse_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set METHOD.KEY=VALUE` (one method) or `--set KEY=VALUE` (every method that takes KEY); values are
    YAML scalars (0, 0.5, true, text)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise OptionError(f"--set {item!r}: write METHOD.KEY=VALUE or KEY=VALUE")
        method, dot, name = key.rpartition(".")
        out.setdefault(method if dot else ALL, {})[name.replace("-", "_")] = yaml.safe_load(value)
    return out


# The fine-tuning settings `compare`'s command line offers, in its order (a recipe's `finetune:` takes every
# FinetuneConfig setting).
COMMAND_TUNING = ("epochs", "lr", "batch_size", "max_length", "seed", "device")


def tuning_params() -> type[BaseModel]:
    """The parameter model of `compare`'s fine-tuning options: FinetuneConfig's fields `COMMAND_TUNING`, with
    their descriptions and defaults (an option not given is FinetuneConfig's default)."""
    from ..registry import params_of
    from ..train.finetune import FinetuneConfig

    fields = params_of(FinetuneConfig).model_fields
    return create_model(
        "CompareTuning", __base__=StrictModel, **{n: (fields[n].annotation, fields[n]) for n in COMMAND_TUNING}
    )


def command_spec(settings: dict[str, Any], tuning: dict[str, Any], judged: dict[str, Any] | None) -> CompareSpec:
    """The spec of `compare`'s command line: its own `settings` (the budgets as written: `450`, `0.05`,
    `0.05,0.1`), the fine-tuning settings given (`tuning`: FinetuneConfig's defaults are the rest) and the
    win rate's judge (`judged`: None for none)."""
    from ..selection.size import parse_budget

    budgets = {k: parse_budget(v, k, "rows" if k == "budget" else "tokens") for k in ("budget", "budget_tokens")
               if (v := settings.get(k)) is not None}  # fmt: skip
    return spec_from({**settings, **budgets, "finetune": tuning, "judge": judged}, "compare")


def load_spec(path: str | os.PathLike) -> tuple[CompareSpec, Path]:
    """A compare recipe: `compare: {data, eval, methods, budget, ...}`; returns it and its folder."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"{p}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("compare"), dict):
        raise UsageError(f"{p}: a compare recipe is a mapping under `compare:` (data, eval, methods, budget, ...)")
    return spec_from(raw["compare"], str(p)), p.resolve().parent


def spec_from(data: dict[str, Any], source: str = "compare") -> CompareSpec:
    try:
        return CompareSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        where += ": " if where else ""
        raised = (first.get("ctx") or {}).get("error")  # a validator's own error keeps the options it names
        why = raised if isinstance(raised, OptionError) else first["msg"].removeprefix("Value error, ")
        raise with_prefix(f"{source}: {where}", why, UsageError) from None


def save_spec(spec: CompareSpec, target: str | os.PathLike, comment: str = "", base_dir: Path | None = None) -> None:
    """Write `spec` as a compare recipe; its paths (relative to `base_dir`) become relative to the recipe's folder."""
    from ..atomic import write_text

    data = spec.model_dump(exclude_defaults=True)
    folder = Path(target).resolve().parent

    def portable(p: str, key: str) -> str:  # a hub id (data, eval, target) stays as written
        if key in ("data", "eval", "target") and isinstance(data_input(base_dir or Path.cwd(), p), str):
            return p
        return os.path.relpath(local_path(base_dir or Path.cwd(), p).resolve(), folder)

    for key in ("data", "eval", "cache_dir", "trials_dir", "output", "report", "target"):
        if data.get(key):
            v = data[key]
            data[key] = [portable(p, key) for p in v] if isinstance(v, list) else portable(v, key)
    if data.get("judge", {}).get("prompt"):
        data["judge"]["prompt"] = os.path.relpath(
            local_path(base_dir or Path.cwd(), data["judge"]["prompt"]).resolve(), folder
        )
    data["budget"], data["budget_tokens"] = spec.budget, spec.budget_tokens
    data = {k: v for k, v in data.items() if v is not None}
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    write_text(target, head + yaml.safe_dump({"compare": data}, sort_keys=False, allow_unicode=True))


def local_path(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


def data_input(base: Path, p: str) -> Path | str:
    """A data input: its local path (relative to `base`), else a hub id as written (a local path wins)."""
    from ..data.hub import local_or_id

    return local_or_id(local_path(base, p), p)
