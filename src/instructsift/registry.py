"""One registry of every step by name: scorers (`score`), selectors (`select`), fit steps (`fit`) and
methods (`method`). The CLI, `instructsift methods`, recipes and the Python API are built from it.

A scorer or selector registers its class (a dataclass) with `@register("score", "ifd")`; its parameter
model (pydantic, unknown options forbidden) is derived from the dataclass's own fields, so each step's
options are declared once. A method registers a `Method` object with its own pydantic `Params`.
Modules in `scoring/`, `selection/`, `train/` and `methods/` are imported on first lookup: adding a step
or a method is one new file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .data.errors import OptionError, with_prefix
from .errors import UsageError

KINDS = ("score", "select", "fit", "method")
KIND_NAMES = {"score": "scorer", "select": "selector", "fit": "fit step", "method": "method"}
PACKAGES = ("scoring", "selection", "train", "methods")  # the step layers, below the recipes that name them


@dataclass
class Entry:
    """A registered step: its kind, name, the object that builds it and its parameter model."""

    kind: str
    name: str
    target: Any  # a dataclass (score / select), a callable (fit) or a `Method`
    params: type[BaseModel]
    aliases: tuple[str, ...] = ()
    doc: str = ""

    def validate(self, options: Mapping[str, Any] | None, context: dict[str, Any] | None = None) -> BaseModel:
        """The options as this step's parameter model; an unknown or ill-typed option is a `UsageError`
        naming the step and the options it takes."""
        options = dict(options or {})
        takes = list(self.params.model_fields)
        unknown = [k for k in options if k not in takes]
        if unknown:
            raise UsageError(
                f"{KIND_NAMES[self.kind]} {self.name!r} does not take {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(takes) or 'no options'})"
            )
        try:
            return self.params.model_validate(options, context=context)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            at = f", option {where!r}" if where else ""
            raised = (first.get("ctx") or {}).get("error")  # a validator's own error keeps its options
            why = raised if isinstance(raised, OptionError) else first["msg"].removeprefix("Value error, ")
            raise with_prefix(f"{KIND_NAMES[self.kind]} {self.name!r}{at}: ", why, UsageError) from None

    def build(self, options: Mapping[str, Any] | None = None) -> Any:
        """A scorer or selector object from its options (only the ones given are passed, so the class's
        own defaults and checks apply)."""
        model = self.validate(options)
        given = {k: getattr(model, k) for k in model.model_fields_set}
        try:
            return self.target(**given)
        except (ValueError, TypeError) as e:
            if isinstance(e, UsageError):
                raise
            raise with_prefix(f"{KIND_NAMES[self.kind]} {self.name!r}: ", e, UsageError) from None


class Kind(Enum):
    """What an option's value is, declared on the field (`Annotated[str, Kind.file]`), so that a recipe
    resolves its relative paths from the step's own declaration.

    `file`: a path, relative to the recipe's folder. `data`: a path, or a hub id (`org/name`) kept as written
    when no local path of that spelling exists. `model`: a path when it starts with ./ or ../ or names
    something in the recipe's folder, else a name (embedded, a hub id) kept as it is. `column`: the name of a
    score-table column the step reads (not a path): a recipe checks, before any work, that a step before it
    writes that column."""

    file = "file"
    data = "data"
    model = "model"
    column = "column"


FilePath = Annotated[str, Kind.file]
DataRef = Annotated[str, Kind.data]
ModelRef = Annotated[str, Kind.model]
ModelLike = Annotated[Any, Kind.model]  # a model reference, or a loaded model (the Python API passes one)
# Optional ones: the kind on the whole `str | None`, so that the field's type reads as it did (`str | None`).
OptionalFilePath = Annotated[str | None, Kind.file]
OptionalDataRef = Annotated[str | None, Kind.data]
OptionalModelRef = Annotated[str | None, Kind.model]
ColumnRef = Annotated[str, Kind.column]  # a score column a selector reads
OptionalColumnRef = Annotated[str | None, Kind.column]
PATH_KINDS = (Kind.file, Kind.data, Kind.model)


def kind_of(field_info: Any) -> Kind | None:
    """The `Kind` a pydantic field declares (in its metadata, or inside an `Annotated` within its type,
    as in `Annotated[str, Kind.file] | None`), or None."""
    found = [m for m in getattr(field_info, "metadata", ()) if isinstance(m, Kind)]
    stack = [getattr(field_info, "annotation", None)]
    while stack and not found:
        t = stack.pop()
        found = [m for m in getattr(t, "__metadata__", ()) if isinstance(m, Kind)]
        stack += typing.get_args(t)
    return found[0] if found else None


def option_kinds(params: type[BaseModel]) -> dict[str, Kind]:
    """The options of a parameter model that declare a `Kind`."""
    return {name: k for name, f in params.model_fields.items() if (k := kind_of(f)) is not None}


_ENTRIES: dict[tuple[str, str], Entry] = {}
_ALIASES: dict[tuple[str, str], str] = {}
_BY_TARGET: dict[Any, Entry] = {}
_loaded = False


def params_of(target: Any) -> type[BaseModel]:
    """A pydantic model of a dataclass's init fields, or of a factory function's keyword parameters
    (names starting with `_` are internal)."""
    hints = typing.get_type_hints(target, include_extras=True)  # keeps `Annotated` kinds
    fields: dict[str, Any] = {}
    if dataclasses.is_dataclass(target):  # in the constructor's order: keyword-only fields (a base's) last
        for f in sorted(dataclasses.fields(target), key=lambda f: f.kw_only is True):
            if not f.init or f.name.startswith("_"):
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = ...
            fields[f.name] = (hints[f.name], default)
    else:
        for name, p in inspect.signature(target).parameters.items():
            if not name.startswith("_") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                fields[name] = (hints.get(name, Any), ... if p.default is p.empty else p.default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{target.__name__}Params", __config__=config, **fields)


def register(kind: str, name: str, *, aliases: tuple[str, ...] = (), params: type[BaseModel] | None = None) -> Callable:
    """Decorator: register a scorer (`score`) or selector (`select`) class, or a fit step (`fit`)
    function, under `name`."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")

    def deco(target: Any) -> Any:
        add(Entry(kind, name, target, params or params_of(target), aliases, _first_line(target.__doc__)))
        return target

    return deco


def add(entry: Entry) -> Entry:
    key = (entry.kind, entry.name)
    if key in _ENTRIES and _ENTRIES[key].target is not entry.target:
        raise ValueError(f"two {KIND_NAMES[entry.kind]}s are registered as {entry.name!r}")
    _ENTRIES[key] = entry
    _BY_TARGET[entry.target] = entry
    for a in entry.aliases:
        _ALIASES[(entry.kind, a)] = entry.name
    return entry


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def load_all() -> None:
    """Import every module of the step packages once, so that their registrations run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in PACKAGES:
        pkg = importlib.import_module(f"instructsift.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"instructsift.{package}.{info.name}")


def _spelling(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _canonical(kind: str, name: str) -> str:
    """The registered name `name` stands for: itself, the name it is an alias of, or the one name or alias it
    spells in other case or with `_` for `-` (`LTD`, `superfiltering_d`)."""
    name = _ALIASES.get((kind, name), name)
    if (kind, name) in _ENTRIES:
        return name
    spelled = {_spelling(n): n for k, n in _ENTRIES if k == kind}
    spelled.update({_spelling(a): n for (k, a), n in _ALIASES.items() if k == kind})
    return spelled.get(_spelling(name), name)


def get(kind: str, name: str) -> Entry:
    """The entry `name` of `kind` (its registered name or an alias, in any case, `_` or `-`), or a
    `UsageError` listing the known ones."""
    load_all()
    key = (kind, _canonical(kind, name))
    if key not in _ENTRIES:
        known = ", ".join(names(kind))
        raise UsageError(f"unknown {KIND_NAMES[kind]} {name!r} (known: {known})")
    return _ENTRIES[key]


def names(kind: str) -> list[str]:
    load_all()
    return sorted(n for k, n in _ENTRIES if k == kind)


def entries(kind: str) -> list[Entry]:
    return [get(kind, n) for n in names(kind)]


def aliases(kind: str) -> dict[str, str]:
    load_all()
    return {a: n for (k, a), n in _ALIASES.items() if k == kind}


def entry_of(obj: Any) -> Entry | None:
    """The entry that built `obj` (by its class), or None for an unregistered object."""
    load_all()
    return _BY_TARGET.get(type(obj))


@dataclass(eq=False)
class Method:
    """A paper's recipe: a typed `Params` model and `steps(params)`, the recipe steps it expands to."""

    name: str
    paper: str
    summary: str
    Params: type[BaseModel]
    steps: Callable[[Any], list[dict[str, Any]]] = field(repr=False)
    defaults: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # What `--ratio` is a share of, in words ("all rows", "the rows with ifd <= 1"): each paper's own
    # meaning, said by `instructsift methods` (the run's summary line gives the count it was taken of).
    ratio_of: str = "all rows"

    def ratio_line(self) -> str | None:
        """What `--ratio` is a share of, for `instructsift methods` (None for a method without a ratio)."""
        return f"{flag('ratio')}: a share of {self.ratio_of}" if "ratio" in self.Params.model_fields else None

    def expand(self, options: Mapping[str, Any] | None = None, *, score_only: bool = False) -> list[dict[str, Any]]:
        """The recipe steps of this method with `options` (checked against `Params`); `score_only` leaves
        out the selectors (and the need for a size), for `instructsift score`, but for those that only add
        columns (a score table for a method holds every column its selectors read)."""
        params = get("method", self.name).validate(options, {"score_only": score_only})
        try:
            budget_steps = getattr(params, "budget_steps", None)  # a size in tokens (methods.base.Size)
            steps = budget_steps(self.steps) if budget_steps else self.steps(params)
            if not score_only:
                return steps
            idle = self._selection_only(options or {})
            if idle:
                named = ", ".join("{" + k + "}" for k in idle)
                raise UsageError(
                    f"method {self.name!r}: {named} only choose{'s' if len(idle) == 1 else ''} rows, and a "
                    "score-only run chooses none: give it to `select`",
                    *idle,
                )
            return [s for s in steps if "select" not in s or _adds_columns_only(s)]
        except ValueError as e:
            if isinstance(e, UsageError):
                raise
            raise with_prefix(f"method {self.name!r}: ", e, UsageError) from None

    def _selection_only(self, options: Mapping[str, Any]) -> list[str]:
        """The given options that change the method's selectors and nothing that a score-only run keeps
        (found by expanding the method without each of them: read from its `steps`, never from a list)."""

        def expanded(opts: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            steps = self.steps(get("method", self.name).validate(opts, {"score_only": True}))
            return [s for s in steps if "select" not in s or _adds_columns_only(s)], steps

        kept, every = expanded(options)
        idle = []
        for name in options:
            try:
                kept_without, every_without = expanded({k: v for k, v in options.items() if k != name})
            except (ValueError, UsageError):  # another option needs this one: it is not idle
                continue
            if kept_without == kept and every_without != every:
                idle.append(name)
        return idle

    def scorers(self, **options: Any) -> list[Any]:
        """The method's scorers, built (Python API; a recipe also runs its fit steps)."""
        return [get("score", s["score"]).build(s["with"]) for s in self.expand(options) if "score" in s]

    def selectors(self, **options: Any) -> list[Any]:
        """The method's selectors, built, in order."""
        return [get("select", s["select"]).build(s["with"]) for s in self.expand(options) if "select" in s]


def _adds_columns_only(step: dict[str, Any]) -> bool:
    """A selector step that only adds columns (it declares `adds_columns_only`): a score-only run keeps it."""
    return bool(getattr(get("select", step["select"]).target, "adds_columns_only", False))


def register_method(method: Method) -> Method:
    add(Entry("method", method.name, method, method.Params, method.aliases, method.summary))
    return method


def method(
    paper: str,
    summary: str,
    *,
    ratio_of: str = "all rows",
    defaults: dict[str, Any] | None = None,
    aliases: tuple[str, ...] = (),
    name: str | None = None,
) -> Callable:
    """Decorator: register a method's `steps(p: Params)` with its paper, summary and defaults (said by
    `instructsift methods`). Its name is its module's (`_` as `-`) unless given; its options are the
    `Params` model its parameter is annotated with, so the function declares the method whole."""

    def deco(steps: Callable[[Any], list[dict[str, Any]]]) -> Callable[[Any], list[dict[str, Any]]]:
        first = next(iter(inspect.signature(steps).parameters))
        params = typing.get_type_hints(steps)[first]
        named = name or steps.__module__.rsplit(".", 1)[-1].replace("_", "-")
        register_method(Method(named, paper, summary, params, steps, defaults or {}, aliases, ratio_of))
        return steps

    return deco


def _plain(value: Any) -> Any:
    """YAML-friendly: tuples as lists."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def flag(name: str, field: Any = None) -> str:
    """The command line's spelling of an option (a field of a step's parameter model): `--name-with-dashes`,
    or the name its pydantic `field` declares (`json_schema_extra={"flag": "gen-batch-size"}`)."""
    extra = getattr(field, "json_schema_extra", None)
    declared = extra.get("flag") if isinstance(extra, dict) else None
    return "--" + str(declared or name).replace("_", "-")


def step(kind: str, name: str, **options: Any) -> dict[str, Any]:
    """One recipe step as a method writes it: `{kind: name, "with": {options that are set}}`."""
    return {kind: name, "with": {k: _plain(v) for k, v in options.items() if v is not None}}


class StrictModel(BaseModel):
    """Base for parameter models: unknown options are errors."""

    model_config = ConfigDict(extra="forbid")


__all__ = [
    "DataRef",
    "Entry",
    "FilePath",
    "Kind",
    "Method",
    "ModelLike",
    "ModelRef",
    "OptionalDataRef",
    "OptionalFilePath",
    "OptionalModelRef",
    "StrictModel",
    "add",
    "aliases",
    "entries",
    "entry_of",
    "flag",
    "get",
    "kind_of",
    "load_all",
    "method",
    "names",
    "option_kinds",
    "params_of",
    "register",
    "register_method",
    "step",
]
