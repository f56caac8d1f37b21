"""The `instructsift` app and what every command module shares: the error guard (exit codes) and the
one-line error and warning. The command modules of `cli/` register their commands on `app`."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

# Placeholders for an option's value, by the Python type typer would show (`--set <list[str]>`).
METAVARS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "NUMBER",
    "path": "PATH",
    "list[str]": "TEXT",
    "list[Path]": "PATH",
}


def readable_metavars(command: Any, ctx: Any) -> Any:
    """Give each option of `command` that takes a value and has no placeholder of its own a readable one
    (`--output PATH`, `--set TEXT`) instead of the Python type (`<path>`, `<list[str]>`); an argument's
    name is its placeholder (`DATA`, `SOURCE...`): it shows no type."""
    for param in command.params:
        if param.param_type_name == "argument":
            param.display_type_rich = _no_type  # typer writes `DATA <str>` from it
            continue
        if param.param_type_name != "option" or param.metavar is not None or getattr(param, "is_flag", False):
            continue
        shown = param.display_type(ctx) if hasattr(param, "display_type") else None
        if isinstance(shown, str) and shown.strip("<>") in METAVARS:
            param.metavar = METAVARS[shown.strip("<>")]
    return command


def _no_type(ctx: Any = None) -> None:
    """An argument's type in its help line: none."""
    return None


class Commands(TyperGroup):
    """The command group: each command it hands out carries readable placeholders."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return None if command is None else readable_metavars(command, ctx)


app = typer.Typer(
    cls=Commands,
    help="Pick the instruction-tuning examples worth fine-tuning on (IFD / Cherry LLM, Superfiltering, ...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts hold literal brackets ([default], 'instructsift[gemma]'): no markup
    context_settings={"help_option_names": ["-h", "--help"]},  # every command's help too
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"instructsift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    pass


err = Console(stderr=True, soft_wrap=True)

BUG_REPORT = (
    "this is a bug in instructsift: please report it to its developers with the command and the traceback above"
)


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, the user's text escaped (a `[...]` in it is text, not rich markup); then exit."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _say(text: str, style: str | None = None) -> None:
    """A line on stderr as it is written (no rich markup, no highlighting)."""
    err.print(text, style=style, highlight=False, markup=False)


def _warn(message: Any) -> None:
    err.print(f"[yellow]warning:[/] {escape(cli_message(message))}", highlight=False)


def cli_option(name: str, *value: Any) -> str:
    """An option as the command line takes it: `--some-name`, or with its value, `--some-name VALUE`
    (a switch: `--some-name` for True, `--no-some-name` for False)."""
    from ..registry import flag

    if value and isinstance(value[0], bool):
        return flag(name) if value[0] else "--no-" + flag(name)[2:]
    return " ".join([flag(name), *map(str, value)])


def cli_message(error: Exception) -> str:
    """A user error's message, the options it names spelled as this command line's flags (`--some-name`,
    where the Python API's `str(error)` says `some_name=`)."""
    from ..data.errors import UserError

    return error.render(cli_option) if isinstance(error, UserError) else str(error)


def _guard(fn: Any) -> Any:
    """Exit codes: a user error (bad data, option or path: `UserError`) is one line and exit 2; a run that
    produced nothing usable (`EmptyResultError`) one line and exit 1; a file the system would not read or
    write (permissions, a full disk) one line and exit 1; Ctrl-C one line and exit 130. Anything else is a
    bug: its traceback, a line saying so, and exit 70 (EX_SOFTWARE)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..data.errors import UserError

        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as e:  # Ctrl-C: one line (how much is cached, from the engine), exit 130
            why = str(e) or "interrupted: what finished is cached; run the same command again to resume"
            _say(why)
            raise typer.Exit(130) from None
        except UserError as e:
            _fail(cli_message(e), e.exit_code)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}", 1)
        except Exception:
            import traceback

            traceback.print_exc()
            _fail(BUG_REPORT, 70)

    return wrapper
