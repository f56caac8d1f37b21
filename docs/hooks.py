"""MkDocs hook: fill the CLI reference and the methods' `instructsift methods NAME` blocks from the
installed CLI at build time, so that the documentation cannot drift from the code.

Markers, each alone on a line of a page:

- ``<!-- cli-reference -->``: every command's (and sub-command's) ``--help``, a section each;
- ``<!-- methods: NAME -->``: the output of ``instructsift methods NAME``.

A command that fails (a method no longer registered, a command renamed) fails the build.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

MARKER = re.compile(r"^<!-- (cli-reference|methods: ([\w-]+)) -->$", re.MULTILINE)
WIDTH = 100


def _app():
    """The `instructsift` console script's Typer app, as pyproject.toml names it."""
    found = [e for e in entry_points(group="console_scripts") if e.name == "instructsift"]
    if found:
        return found[0].load()
    from instructsift.cli import app

    return app


def _invoke(args: list[str]) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        _app(), args, prog_name="instructsift", env={"NO_COLOR": "1", "COLUMNS": str(WIDTH)}, terminal_width=WIDTH
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
    parts = ["## instructsift\n", "```text\n" + _invoke(["--help"]) + "\n```\n"]
    for path, _ in _commands(root):
        parts.append(f"## instructsift {' '.join(path)}\n")
        parts.append("```text\n" + _invoke([*path, "--help"]) + "\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match: re.Match) -> str:
        if match.group(1) == "cli-reference":
            return _reference()
        return (
            "```text\n$ instructsift methods " + match.group(2) + "\n" + _invoke(["methods", match.group(2)]) + "\n```"
        )

    return MARKER.sub(fill, markdown)
