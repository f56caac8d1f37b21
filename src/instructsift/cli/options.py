"""The options and helpers several commands share: how DATA is read (its format, hub split, bad rows), how
a selection is written, the engine, the cache, and the checks of input and output paths before any work."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError
from .model_options import TrustOpt


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class Fmt(str, Enum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"


def _method_help() -> str:
    """The registered methods, for --help (`instructsift methods` shows their options)."""
    from .. import registry

    aliases = registry.aliases("method")
    names = [n + "".join(f" (alias: {a})" for a, t in aliases.items() if t == n) for n in registry.names("method")]
    return ", ".join(names) + "."


Input = Annotated[
    Path, typer.Argument(metavar="DATA", help="Data: .json, .jsonl(.gz), .parquet, or a datasets folder.")
]
DataArg = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help="Data: .json, .jsonl(.gz), .parquet, a datasets folder, or a hub data set (org/name, hf://org/name; "
        "a local path of the same name wins).",
    ),
]
# The data options every command that reads DATA and writes a selection shares, declared once here and
# gathered in option groups (`Hub`, `Source`, `Export`, below): how DATA is read, and how the selection is written.
DATA_PANEL = "Data source and export"
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="Hub data: the split [train].", rich_help_panel=DATA_PANEL)
]
SubsetOpt = Annotated[
    str | None, typer.Option("--subset", help="Hub data: the subset (config name).", rich_help_panel=DATA_PANEL)
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Hub data: a branch, tag or commit.", rich_help_panel=DATA_PANEL)
]
StreamingOpt = Annotated[
    bool,
    typer.Option(
        "--streaming",
        help="Hub data: stream the rows instead of downloading the whole set.",
        rich_help_panel=DATA_PANEL,
    ),
]
FieldsOpt = Annotated[
    str | None,
    typer.Option(
        "--fields",
        help="The data's field names for a format's: instruction=prompt,output=completion (also input, system, "
        "history, messages, conversations).",
        rich_help_panel=DATA_PANEL,
    ),
]
ToOpt = Annotated[
    Fmt | None,
    typer.Option(
        "--to", help="Write the selection as alpaca, sharegpt or openai (messages) [the input's format].",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
CardOpt = Annotated[
    bool,
    typer.Option(
        "--card", help="Also write a data set card (README.md) beside the output file (a folder always gets one).",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
PushOpt = Annotated[
    str | None,
    typer.Option(
        "--push-to-hub", metavar="ORG/NAME", help="Upload the selection and its card to this hub data set (needs HF_TOKEN).",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
PrivateOpt = Annotated[
    bool, typer.Option("--private", help="--push-to-hub: a private data set.", rich_help_panel=DATA_PANEL)
]


MethodOpt = Annotated[
    str,
    typer.Option("--method", "-m", help=_method_help()),
]
FormatOpt = Annotated[Fmt | None, typer.Option("--format", help="Record format [detected].")]
OnErrorOpt = Annotated[OnError, typer.Option("--on-error", help="fail on a bad row, or skip it to the rejects file.")]
RejectsOpt = Annotated[Path | None, typer.Option(help="Where skipped rows go [OUTPUT.rejects.jsonl].")]
DroppedOpt = Annotated[
    Path | None, typer.Option("--dropped", help="Write every dropped record with its reason (step, code, detail).")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace existing outputs (never an input, nor a folder an earlier run did not write).",
    ),
]
AllowEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Write an empty result when nothing could be read or scored, instead of failing with exit 1.",
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Also write an HTML report of the run (.html; needs instructsift[report])."),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the score cache.")]


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOpt = Annotated[
    Engine | None, typer.Option("--engine", help="Where scorers run: in this process, or on a Ray cluster [local].")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="ray: the cluster (ray://HOST:10001, auto) [$INSTRUCTSIFT_RAY_ADDRESS, else a local Ray]."
    ),
]

CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Every cache: scores, models, fingerprints [$INSTRUCTSIFT_CACHE or ~/.cache/instructsift]."
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress and no log (score, select, run: only warnings and errors).")
]


def option_groups(fn: Callable) -> Callable:
    """Decorator of a command function: a parameter annotated with an option group (a dataclass of typer
    options, such as `Hub`) stands for the group's options in the command's signature, in its place (a
    group's field that is a group: its options); `fn` gets them as one object of that class."""
    return OptionGroups(fn)


class OptionGroups:
    """A command function with its option groups spread into its signature (see `option_groups`)."""

    def __init__(self, fn: Callable) -> None:
        functools.update_wrapper(self, fn)
        self.__annotations__ = {}  # typer reads the `__signature__` below
        self.fn, self.own = fn, list(inspect.signature(fn, eval_str=True).parameters.values())
        self.groups = {p.name: p.annotation for p in self.own if dataclasses.is_dataclass(p.annotation)}

    @property
    def __signature__(self) -> inspect.Signature:  # type: ignore[override]
        return inspect.Signature([q for p in self.own for q in _spread(p.name, p.annotation, p.default)])

    def __call__(self, **given: Any) -> Any:
        groups = {name: _gather(group, given) for name, group in self.groups.items()}  # takes their options out
        return self.fn(**groups, **given)


def _spread(name: str, annotation: Any, default: Any) -> list[inspect.Parameter]:
    """A parameter, or the options of the group it is annotated with, as keyword parameters."""
    if not dataclasses.is_dataclass(annotation):
        return [inspect.Parameter(name, KEYWORD, default=default, annotation=annotation)]
    hints = typing.get_type_hints(annotation, include_extras=True)
    return [p for f in dataclasses.fields(annotation) for p in _spread(f.name, hints[f.name], f.default)]


def _gather(group: Any, given: dict[str, Any]) -> Any:
    """The `group` object of its options, taken out of `given`."""
    hints = typing.get_type_hints(group)
    return group(**{f.name: _gather(hints[f.name], given) if dataclasses.is_dataclass(hints[f.name])
                    else given.pop(f.name) for f in dataclasses.fields(group)})  # fmt: skip


KEYWORD = inspect.Parameter.KEYWORD_ONLY


@dataclass(frozen=True)
class Hub:
    """Hub data: the split, subset and revision DATA is read at."""

    split: SplitOpt = None
    subset: SubsetOpt = None
    revision: RevisionOpt = None


@dataclass(frozen=True)
class Source(Hub):
    """How DATA is read: a hub data set's split, subset and revision, streamed or not; the data's field names."""

    streaming: StreamingOpt = False
    fields: FieldsOpt = None


@dataclass(frozen=True)
class Export:
    """How the selection is written: its format, a data set card, an upload to the hub."""

    to: ToOpt = None
    card: CardOpt = False
    push_to_hub: PushOpt = None
    private: PrivateOpt = False


@dataclass(frozen=True)
class Runner:
    """Where scorers run: in this process, or on a Ray cluster."""

    engine: EngineOpt = None
    ray_address: RayAddressOpt = None

    def settings(self) -> dict[str, Any]:
        """As recipe settings."""
        if self.ray_address and self.engine is not Engine.ray:
            raise UsageError("--ray-address is an option of --engine ray")
        return {"engine": self.engine.value if self.engine else None, "ray_address": self.ray_address}


@dataclass(frozen=True)
class Reading:
    """How DATA's records are read: their format, and what a bad row does."""

    format: FormatOpt = None
    on_error: OnErrorOpt = OnError.fail


@dataclass(frozen=True)
class ModelRun:
    """How `finetune` and `evaluate` read DATA, load the model (its own code) and cache, and what they say."""

    reading: Reading = Reading()
    trust_remote_code: TrustOpt = False
    cache_dir: CacheOpt = None
    quiet: QuietOpt = False
    hub: Hub = Hub()


@dataclass(frozen=True)
class Run:
    """How `score` and `select` read DATA (its format, bad rows), cache scores and run scorers."""

    reading: Reading = Reading()
    rejects: RejectsOpt = None
    cache_dir: CacheOpt = None
    no_cache: NoCacheOpt = False
    runner: Runner = Runner()
    quiet: QuietOpt = False


def _data_options(*groups: Source | Export) -> dict[str, Any]:
    """The options of these groups a command was given (not at their defaults), as recipe settings."""
    from ..data.records import parse_fields

    given = {f.name: getattr(g, f.name) for g in groups for f in dataclasses.fields(g)}
    out = {f.name: given[f.name] for g in groups for f in dataclasses.fields(g) if given[f.name] != f.default}
    if "fields" in out:
        out["fields"] = parse_fields(out["fields"])
    if "to" in out:
        out["to"] = out["to"].value
    if given.get("private") and not given.get("push_to_hub"):
        raise UsageError("--private is an option of --push-to-hub")
    return out


def _read(path: str | Path, reading: Reading, hub: Hub) -> Any:
    """`data.read` of a command's DATA (a path or hub id, read at `hub`'s split, subset, revision)."""
    from ..api import read

    fmt = reading.format.value if reading.format else None
    return read(path, format=fmt, on_error=reading.on_error.value, **dataclasses.asdict(hub))


def _local(spec: str | Path | None) -> Path | None:
    """The local path a data input reads (None for a hub id): what must exist, and what no output may
    write over."""
    from ..data.hub import local_part

    return None if spec is None else local_part(spec)


def _check_paths(inputs: list[Any], outputs: list[tuple[Path | None, str, str]], overwrite: bool) -> None:
    """Before any work: the data input is readable as named, and no output (path, kind, flag) would write
    over an input, another output or the user's files (see `instructsift.outputs`)."""
    from ..data.errors import MissingFileError
    from ..outputs import Output, check_inputs, check_outputs

    check_inputs(inputs[:1])
    for extra in inputs[1:]:
        if extra is not None and (local := _local(extra)) is not None and not local.exists():
            raise MissingFileError(f"{extra}: no such file or folder")
    outs = [Output(Path(p), kind, flag) for p, kind, flag in outputs if p is not None]
    check_outputs([Path(p) for p in inputs if p is not None], outs, overwrite=overwrite)


def _model_input(*models: str | None) -> list[Path]:
    """The models a command was given that name a local file or folder (an output must not
    write over them)."""
    return [Path(m) for m in models if m and Path(m).exists()]
