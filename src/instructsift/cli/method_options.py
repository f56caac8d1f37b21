"""The method options of `score` and `select`, generated from the registry: one option per field of every
method's `Params` (their union), its help from the field's description, its type from its annotation, its
value "unset" until given. Only the options the user gave reach the method, whose `Params` refuses one it
does not take (naming the options it takes). Adding a method or an option touches no file of `cli/`.

`select --method M --help` shows M's options apart from the common ones (the others hidden); the plain
`--help` shows the method options that every method takes and a line saying so.

The same mechanism gives a command the options of one step's parameter model (`with_params_options`:
`finetune`'s training settings are the `finetune` fit step's fields).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from .. import registry

if TYPE_CHECKING:
    from pydantic import BaseModel

PANEL = "Options of "


def number(value: Any) -> int | float:
    """A count or a share: `200000` is an int, `0.05` a float (for a field typed `int | float`)."""
    from ..data.errors import OptionError
    from ..selection.size import number as read

    if isinstance(value, (int, float)):
        return value
    if "," in value:
        raise typer.BadParameter(f"one number, not a list ({value}): a list of budgets is for compare")
    try:
        return read(value)  # an int when it reads as one, else a float
    except OptionError:
        raise typer.BadParameter(f"{value!r} is not a number (a count, 200000, or a share, 0.05)") from None


def _kind(annotation: Any) -> str:
    """How the command line reads a field: flag, int, float, number (int or float), path or str (the
    method's `Params` parses the text: lists are comma-separated)."""
    if typing.get_origin(annotation) is Annotated:
        return _kind(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = {_kind(a) for a in typing.get_args(annotation) if a is not type(None)}
        if len(kinds) == 1:
            return kinds.pop()
        return "number" if kinds <= {"int", "float"} else "str"
    if annotation is bool:
        return "flag"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    return "str"


def _default(field: Any) -> Any:
    from pydantic_core import PydanticUndefined

    value = field.get_default(call_default_factory=True)
    return None if value is PydanticUndefined else value


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


@dataclass
class MethodOption:
    """One command-line option: a field name and, for each method that takes it, that method's field."""

    name: str
    fields: dict[str, Any]  # method name -> pydantic FieldInfo

    @property
    def flag(self) -> str:
        """`--name-with-dashes`, or the flag its field declares (`json_schema_extra={"flag": ...}`)."""
        flags = {registry.flag(self.name, f) for f in self.fields.values()}
        return flags.pop() if len(flags) == 1 else registry.flag(self.name)

    @property
    def param(self) -> str:
        """The command function's parameter of this option: its flag as an identifier."""
        return self.flag[2:].replace("-", "_")

    @property
    def kind(self) -> str:
        """How the command line reads it (`_kind`); a field that declares a file (`registry.FilePath`) is a path."""
        kinds = {
            "path" if registry.kind_of(f) is registry.Kind.file else _kind(f.annotation) for f in self.fields.values()
        }
        if len(kinds) == 1:
            return kinds.pop()
        return "number" if kinds <= {"int", "float", "number"} else "str"

    def help(self, method: str | None = None) -> str:
        """The field's description (each method's where they differ); with `method`, that method's own and
        its default."""
        if method is not None:
            field = self.fields[method]
            text, default = (field.description or "").rstrip("."), _default(field)
            if default not in (None, False, "") and "[" not in text and self.kind != "flag":
                text += f" [{_shown(default)}]"
            return text + "." if text else ""
        said: dict[str, list[str]] = {}
        for name, field in self.fields.items():
            if field.description:
                said.setdefault(field.description.rstrip("."), []).append(name)
        if len(said) == 1:
            (text,) = said
            return text + "."
        return "; ".join(f"{', '.join(names)}: {text}" for text, names in said.items()) + ("." if said else "")

    def panel(self, every: list[str]) -> str:
        """The help section of this option: the methods that take it."""
        takes = [m for m in every if m in self.fields]
        if len(takes) == len(every):
            return PANEL + "every method"
        rest = [m for m in every if m not in self.fields]
        if len(rest) < len(takes) and len(rest) <= 3:
            return PANEL + "every method but " + ", ".join(rest)
        return PANEL + ", ".join(takes)

    @property
    def off_switch(self) -> str | None:
        """The name of a switch's `False` flag where its field declares one (`json_schema_extra={"off":
        "full"}`: `--lora/--full`), else None (`--name/--no-name`)."""
        offs = {
            (f.json_schema_extra or {}).get("off")
            for f in self.fields.values()
            if isinstance(f.json_schema_extra, dict)
        }
        return next(iter(offs - {None}), None)

    def parameter(self, panel: str | None, help: str, default: Any = None) -> inspect.Parameter:
        """The command function's parameter: typer reads its `Annotated[..., typer.Option(...)]`; a
        `default` is shown in the help (`[default: 3.0]`). Which options were given is read from the
        command line, not from their values (see `WithOptions`)."""
        kind = self.kind
        if kind == "flag":
            takes_true = any(_default(f) is True for f in self.fields.values())
            off = self.off_switch
            decl = f"{self.flag}/--{off}" if off else f"{self.flag}/--no-{self.flag[2:]}" if takes_true else self.flag
            option = typer.Option(decl, help=help, rich_help_panel=panel, show_default=False)
            return inspect.Parameter(self.param, KEYWORD, default=False, annotation=Annotated[bool, option])
        types_ = {"int": int, "float": float, "path": str, "str": str, "number": Any}
        extra: dict[str, Any] = {"parser": number, "metavar": "NUMBER"} if kind == "number" else {}
        if kind == "path":
            extra["metavar"] = "PATH"
        option = typer.Option(self.flag, help=help, rich_help_panel=panel, show_default=default is not None, **extra)
        annotation = Annotated[types_[kind] | None if kind != "number" else Any, option]  # type: ignore[operator]
        return inspect.Parameter(self.param, KEYWORD, default=default, annotation=annotation)


KEYWORD = inspect.Parameter.KEYWORD_ONLY


def method_options(exclude: Iterable[str] = ()) -> dict[str, MethodOption]:
    """The union of every registered method's option fields (less `exclude`), by name, in first-seen order."""
    out: dict[str, MethodOption] = {}
    skip = set(exclude)
    for entry in registry.entries("method"):
        for name, field in entry.params.model_fields.items():
            if name not in skip:
                out.setdefault(name, MethodOption(name, {})).fields[entry.name] = field
    return dict(sorted(out.items(), key=lambda kv: -len(kv[1].fields)))  # the most shared first


def params_options(params: type[BaseModel], owner: str) -> dict[str, MethodOption]:
    """One option per field of the pydantic model `params`, in its order; `owner` names whose fields they
    are (a step's name)."""
    return {n: MethodOption(n, {owner: f}) for n, f in params.model_fields.items()}


def with_method_options(exclude: Callable[[], Iterable[str]] = lambda: ()) -> Callable:
    """Decorator of a command function `fn(..., method_options: dict)`: typer sees its own parameters and
    one option per method option (`method_options()`, less `exclude()`), read from the registry each time
    the command is built (a method registered later has its options too); `fn` gets the method options
    the user gave, by name, as `method_options`. Their help sections name the methods that take them."""

    def panel(option: MethodOption) -> str:
        return option.panel(registry.names("method"))

    return functools.partial(
        WithOptions,
        options=lambda: method_options(exclude()),
        panel=panel,
        help=MethodOption.help,
        into="method_options",
    )


def with_params_options(
    params: Callable[[], type[BaseModel]],
    owner: str,
    into: str = "settings",
    *,
    panel: str | None = None,
    prefix: str = "",
    show_default: bool = True,
) -> Callable:
    """Decorator of a command function `fn(..., <into>: dict)`: typer sees its own parameters and one option
    per field of the pydantic model `params()` that is not one of them (the command's own option of that
    name serves for such a field), where `<into>` stands, its flag the one the field declares (else its name),
    its help `prefix` and the field's description, in the help section `panel`; `fn` gets the ones the user
    gave, by field name, as `<into>` (the model's defaults are the rest). The default shows as typer's
    `[default: ...]`, or with `show_default=False` in the help text (`[256]`; the option's value stays unset
    until given). Adding a field to the model adds its option: no file of `cli/` changes. Several of these
    decorators stack (each `into` its own)."""

    def help(option: MethodOption) -> str:
        return prefix + (option.help() if show_default else option.help(owner))

    return functools.partial(
        WithOptions,
        options=lambda: params_options(params(), owner),
        own_win=True,
        panel=lambda option: panel,
        help=help,
        default=lambda option: _default(option.fields[owner]) if show_default else None,
        into=into,
    )


class WithOptions:
    """A command function with generated options added to its signature (see `with_method_options` and
    `with_params_options`)."""

    def __init__(
        self,
        fn: Callable,
        options: Callable[[], dict[str, MethodOption]],
        panel: Callable[[MethodOption], str | None],
        help: Callable[[MethodOption], str],
        into: str,
        default: Callable[[MethodOption], Any] = lambda option: None,
        own_win: bool = False,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.__annotations__ = {}  # typer reads the `__signature__` below
        self.fn, self.generate, self.panel, self.help, self.into = fn, options, panel, help, into
        self.default, self.own_win = default, own_win

    @property
    def own(self) -> list[inspect.Parameter]:
        """The function's parameters but `into` (read each time: an inner `WithOptions` generates its own)."""
        return [
            p
            for p in inspect.signature(self.fn, eval_str=True).parameters.values()
            if p.name not in (self.into, CONTEXT)
        ]

    @property
    def at(self) -> int:
        """Where the generated options stand among `own`: where `into` does (else at the end)."""
        names = [p for p in inspect.signature(self.fn, eval_str=True).parameters if p != CONTEXT]
        return names.index(self.into) if self.into in names else len(names)

    @property
    def options(self) -> dict[str, MethodOption]:
        """The generated options by their parameter's name (`MethodOption.param`)."""
        generated = {o.param: o for o in self.generate().values()}
        clash = sorted(set(generated) & {p.name for p in self.own})
        if self.own_win:  # the command's own option of that name serves
            return {k: v for k, v in generated.items() if k not in clash}
        if clash:
            raise ValueError(f"{self.fn.__name__}: generated options {clash} have the names of its own options")
        return generated

    @property
    def __signature__(self) -> inspect.Signature:  # type: ignore[override]
        context = inspect.Parameter(CONTEXT, KEYWORD, annotation=typer.Context)
        generated = [o.parameter(self.panel(o), self.help(o), self.default(o)) for o in self.options.values()]
        own, at = self.own, self.at
        return inspect.Signature([*own[:at], *generated, *own[at:], context])

    def __call__(self, **kwargs: Any) -> Any:
        ctx = kwargs.pop(CONTEXT)
        options = self.options
        given = {k: kwargs.pop(k) for k in options if k in kwargs}
        given = {options[k].name: v for k, v in given.items() if _given(ctx.get_parameter_source(k))}
        inner = CONTEXT in inspect.signature(self.fn).parameters  # a `WithOptions` inside reads it too
        return self.fn(**kwargs, **{self.into: given}, **({CONTEXT: ctx} if inner else {}))


CONTEXT = "_typer_context"


def _given(source: Any) -> bool:
    """Whether an option's value came from the command line (or the environment), not its default."""
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _method_named(args: list[str]) -> str | None:
    """The registered name of the method `--method` / `-m` names in `args`, or None (none, or unknown)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = None
        if arg in ("--method", "-m") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--method="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-m") and not arg.startswith("--") and len(arg) > 2:
            value = arg[2:]
        if value is not None:
            try:
                return registry.get("method", value).name
            except Exception:
                return None
    return None


class MethodCommand(TyperCommand):
    """`score` and `select`: the help shows the options in sections (`rich_help_panel`). Without `--method`
    it shows the method options every method takes and a line saying how to see one method's; with
    `--method M`, M's own options (their help M's) and not the other methods'."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        method = _method_named(args)
        options = {o.param: o for o in method_options().values()}
        every = registry.names("method")
        for param in self.params:
            option = options.get(param.name)
            if option is None:
                continue
            if method is None:
                param.hidden = len(option.fields) < len(every)  # one method's or a few: `--method M --help`
                param.help = option.help()
                param.rich_help_panel = option.panel(every)  # type: ignore[attr-defined]
            else:
                param.hidden = method not in option.fields
                param.help = option.help(method) if not param.hidden else param.help
                param.rich_help_panel = PANEL + method  # type: ignore[attr-defined]
        ctx.meta[ONE_METHOD] = method
        return super().parse_args(ctx, args)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                title = "Arguments" if param.param_type_name == "argument" else "Options"
                sections.setdefault(getattr(param, "rich_help_panel", None) or title, []).append(record)
        for title, records in sorted(sections.items(), key=lambda kv: kv[0].startswith(PANEL)):  # methods' last
            with formatter.section(title):
                formatter.write_dl(records)
        if ctx.meta.get(ONE_METHOD) is None:
            formatter.write_paragraph()
            formatter.write_text(f"{ctx.info_name} --method M --help shows the options of method M.")


ONE_METHOD = "instructsift.method_options.method"  # ctx.meta: the method `--method` named, or None
