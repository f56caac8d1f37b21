"""MkDocs hook: fill the CLI reference and the methods' `instructsift methods NAME` blocks from the
installed CLI at build time, so that the documentation cannot drift from the code.

Markers, each alone on a line of a page:

- ``<!-- cli-reference -->``: every command's (and sub-command's) ``--help``, a section each;
- ``<!-- methods: NAME -->``: the output of ``instructsift methods NAME`` (and of ``select --method NAME
  --help`` once the CLI gives a method its own help).

A command that fails (a method no longer registered, a command renamed) fails the build.
"""

from __future__ import annotations

import functools
import re
from importlib.metadata import entry_points

MARKER = re.compile(r"^<!-- (cli-reference|methods: ([\w-]+)) -->$", re.MULTILINE)
WIDTH = 100


@functools.cache
def _app():
    """The `instructsift` console script's Typer app, as pyproject.toml names it."""
    found = [e for e in entry_points(group="console_scripts") if e.name == "instructsift"]
    if found:
        return found[0].load()
    from instructsift.cli import app

    return app


@functools.cache
def _invoke(args: tuple[str, ...]) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        _app(), list(args), prog_name="instructsift", env={"NO_COLOR": "1", "COLUMNS": str(WIDTH)}, terminal_width=WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"`instructsift {' '.join(args)}` exited {result.exit_code}:\n{result.output}")
    return result.stdout.rstrip()


def _commands(group, path: tuple[str, ...] = ()):
    """(path, command) for every command under the click group, in its listing order."""
    import click

    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _reference() -> str:
    import typer

    root = typer.main.get_command(_app())
    parts = ["## instructsift\n", "```text\n" + _invoke(("--help",)) + "\n```\n"]
    for path, _ in _commands(root):
        parts.append(f"## instructsift {' '.join(path)}\n")
        parts.append("```text\n" + _invoke((*path, "--help")) + "\n```\n")
    return "\n".join(parts)


def _method_block(name: str) -> str:
    """`instructsift methods NAME`, and `select --method NAME --help` where the CLI gives a method its own
    help (it differs from the plain `select --help`)."""
    block = "```text\n$ instructsift methods " + name + "\n" + _invoke(("methods", name)) + "\n```"
    own = _invoke(("select", "--method", name, "--help"))
    if own != _invoke(("select", "--help")):
        block += "\n\n```text\n$ instructsift select --method " + name + " --help\n" + own + "\n```"
    return block


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match: re.Match) -> str:
        return _reference() if match.group(1) == "cli-reference" else _method_block(match.group(2))

    return MARKER.sub(fill, markdown)
