"""The options and helpers several commands share: how DATA is read (its format, hub split, bad rows), how
a selection is written, the engine, the cache, and the checks of input and output paths before any work."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError


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
# The data options every command that reads DATA and writes a selection shares (declared once here;
# `_data_options` gathers those a command was given). SOURCE: how DATA is read; EXPORT: how the selection
# is written.
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
SOURCE_OPTIONS = {"split": None, "subset": None, "revision": None, "streaming": False, "fields": None}
EXPORT_OPTIONS = {"to": None, "card": False, "push_to_hub": None, "private": False}


def _data_options(given: dict[str, Any]) -> dict[str, Any]:
    """The shared data options (SOURCE_OPTIONS, EXPORT_OPTIONS) a command was given, as recipe settings."""
    from ..data.records import parse_fields

    out = {k: given[k] for k, unset in (SOURCE_OPTIONS | EXPORT_OPTIONS).items() if k in given and given[k] != unset}
    if "fields" in out:
        out["fields"] = parse_fields(out["fields"])
    if "to" in out:
        out["to"] = out["to"].value
    if given.get("private") and not given.get("push_to_hub"):
        raise UsageError("--private is an option of --push-to-hub")
    return out


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


def _read(path: str | Path, fmt: Fmt | None, on_error: OnError, **hub: Any) -> Any:
    """`data.read` of a command's DATA (a path or hub id; `hub`: its split, subset, revision)."""
    from ..api import read

    return read(path, format=fmt.value if fmt else None, on_error=on_error.value, **hub)


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
