"""User errors, and bad input: where it is (file, line or row, field) and why; a missing optional package.

Every mistake a user can make (bad data, a bad option, a missing file, an output that would overwrite
something) raises a `UserError`: the CLI prints its message as one line and exits 2. Any other exception
is a bug in instructsift and keeps its traceback. `UserError` is a `ValueError`, so code that catches
`ValueError` keeps working.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass
class Reject:
    """One input row that could not be used, with its position and the reason."""

    path: str
    row: int | None
    line: int | None
    field: str | None
    reason: str
    record: Any = None

    def where(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "row": self.row,
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "record": self.record,
        }


_UNSET: Any = object()


class Placeholder(str):
    """A value that stands for what the user gives (`MODEL`, `N`): shown as it is, never quoted."""

    def __repr__(self) -> str:
        return str(self)


def literal(text: str) -> str:
    """`text` (a value, a path, a pip line) for the message of a `UserError` that names options: its
    braces stay text, not placeholders."""
    return text.replace("{", "{{").replace("}", "}}")


def python_option(name: str, value: Any = _UNSET) -> str:
    """An option as the Python API takes it: `ratio=`, or with its value, `min_chars=10`."""
    return f"{name}=" if value is _UNSET else f"{name}={value!r}"


class UserError(ValueError):
    """A mistake in the user's data, options or paths: one clear line, never a traceback.

    The message may name the options it is about by their field names, as `{name}` placeholders: those
    listed after it bare, those given as keywords with their value.
    `OptionError("needs exactly one of {ratio} or {top}", "ratio", "top")` reads `needs exactly one of
    ratio= or top=` (the Python API's spelling, `str(e)`), and `render(spell)` spells them another way:
    the CLI's `--ratio` (`cli.core.cli_message`). A message that names no options is plain text, braces
    and all; in one that does, user text goes through `literal`."""

    exit_code = 2

    def __init__(self, message: str = "", *options: str, **values: Any):
        self.template, self.options, self.values = message, options, values
        super().__init__(message)

    def render(self, spell: Callable[..., str] = python_option) -> str:
        """The message with its options spelled by `spell(name)` or `spell(name, value)`."""
        if not self.options and not self.values:
            return self.template
        names = {n: spell(n) for n in self.options} | {n: spell(n, v) for n, v in self.values.items()}
        return self.template.format_map(names)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> Any:  # pickles whatever its subclass's constructor takes (Ray sends errors on)
        return (_rebuild, (type(self), self.args, self.__dict__))


class OptionError(UserError):
    """A bad option value, an unknown name, or options that do not go together."""


def _rebuild(cls: type, args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """A pickled user error back, its constructor not called (a subclass's may take other arguments); made
    by the built-in exception whose layout it has (OSError for a `MissingFileError`)."""
    base = max((b for b in cls.__mro__ if b.__module__ == "builtins"), key=lambda b: b.__basicsize__)
    e = base.__new__(cls, *args)
    e.args = args
    e.__dict__.update(state)
    return e


def with_prefix(prefix: str, error: Exception, cls: type[UserError] | None = None) -> UserError:
    """`error` as a `cls` (default `OptionError`) whose message starts with `prefix` (the step or the place
    it is about), the options it names kept so that each front end spells them its way."""
    cls = cls or OptionError
    if isinstance(error, UserError) and (error.options or error.values):
        return cls(literal(prefix) + error.template, *error.options, **error.values)
    return cls(prefix + str(error))


def renamed(error: UserError, names: Mapping[str, str]) -> UserError:
    """`error` (of its own class) naming its options by `names` (a field of a class -> the option a front
    end takes for it: `concurrency` -> `judge_concurrency`); options not in `names` and the rest of the
    message stay as they were."""
    if not (error.options or error.values):
        return error
    parts = []
    for text, name, spec, conversion in string.Formatter().parse(error.template):
        parts.append(literal(text))
        if name is not None:
            field = names.get(name, name) + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            parts.append("{" + field + "}")
    out = copy.copy(error)
    out.template, out.args = "".join(parts), ("".join(parts),)
    out.options = tuple(names.get(n, n) for n in error.options)
    out.values = {names.get(n, n): v for n, v in error.values.items()}
    return out


@contextlib.contextmanager
def options_named(names: Mapping[str, str]) -> Iterator[None]:
    """Inside it, a `UserError` names its options by `names` (see `renamed`): a factory that builds a class
    from options of other names (`judge_concurrency=` for `ServerJudge(concurrency=)`) lets the class
    check its own fields, and the user reads the options they gave."""
    try:
        yield
    except UserError as e:
        raise renamed(e, names) from None


def check_at_least(owner: Any, **bounds: int) -> None:
    """Each named setting of `owner` (None: not set) is at least its bound, else an `OptionError` naming the
    first that is not: `check_at_least(self, max_length=2, chunk_size=1)`."""
    for name, least in bounds.items():
        value = getattr(owner, name)
        if value is not None and value < least:
            raise OptionError(f"{name} must be at least {least}, got {value}")


class MissingColumnError(UserError, KeyError):
    """A column or record field that the user named (or a selector needs) is not there."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist, or is not what it must be."""


class OutputError(UserError):
    """An output path that would overwrite an input or the user's files, or that has an unknown kind."""


class EmptyResultError(UserError):
    """A run that would write nothing because nothing could be read or scored (see --allow-empty). Exit 1,
    not 2: the command was valid and ran, but produced no usable result."""

    exit_code = 1


class InputError(UserError):
    """Raised for bad input when the user did not ask to skip it. `reject.reason` may name options, as a
    `UserError`'s message does, listed after it: `InputError(reject, allow_empty=True)` for a reason that
    says `pass {allow_empty}`."""

    def __init__(self, reject: Reject, *options: str, **values: Any):
        self.reject = reject
        where = literal(reject.where()) if options or values else reject.where()
        super().__init__(f"{where}: {reject.reason}", *options, **values)


class FieldError(ValueError):
    """Raised while parsing or converting one record; the reader adds the file, line and row. `reason` may
    name options, as a `UserError`'s message does: `self.reason` spells them as Python does (a rejects
    file's text), `at(where)` keeps them for each front end to spell."""

    def __init__(self, field: str | None, reason: str, *options: str, **values: Any):
        self.field = field
        self.error = UserError(reason, *options, **values)
        self.reason = str(self.error)
        super().__init__(self.reason)

    def at(self, where: str) -> UserError:
        """This error as a `UserError` whose message starts with `where` (the file, record and field)."""
        return with_prefix(f"{where}: ", self.error, UserError)


class MissingExtraError(OptionError, ImportError):
    """A feature needs an optional package that is not installed: the one error for every such case. The
    message names the feature, the package, and the line that installs it: `pip install
    'instructsift[EXTRA]'` for an extra of instructsift, else `install` (a package published outside the
    extras, such as the embedded model's)."""

    def __init__(self, what: str, package: str, *, extra: str | None = None, install: str | None = None, **values: Any):
        if (extra is None) == (install is None):
            raise TypeError("give exactly one of extra or install")
        self.what, self.package, self.extra = what, package, extra
        self.install = install or f"pip install 'instructsift[{extra}]'"
        if not values:
            super().__init__(f"{what} needs {package}, which is not installed: {self.install}")
            return
        # `what` names an option, as `{model}` with `model=` its value: the rest is text, braces and all
        super().__init__(what + literal(f" needs {package}, which is not installed: {self.install}"), **values)


def require(
    module: str,
    what: str,
    *,
    extra: str | None = None,
    install: str | None = None,
    package: str | None = None,
    **values: Any,
) -> ModuleType:
    """`import module`, or a `MissingExtraError` saying that `what` needs it and how to install it. The
    package named is `package` (a distribution whose name differs from its module's), else the module that
    could not be found, which may be one that `module` imports. `what` may name an option, as
    `OptionError` does: `require(m, "{encoder}", ..., encoder="mpnet")`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = (e.name or module).split(".")[0]
        name = package if package and missing == module.split(".")[0] else missing
        raise MissingExtraError(what, name, extra=extra, install=install, **values) from None
