"""The command's front door: `-h` beside `--help` on every command, `--version`, readable placeholders
(`--ratio NUMBER`, not the Python type `<float>`), and `methods NAME` for a name, an alias or a spelling of
one in other case or with `_`."""

from __future__ import annotations

import re

import click
import pytest
import typer
from helpers import cli, cli_subprocess

from instructsift import __version__
from instructsift.cli import app

COMMANDS = ["score", "select", "run", "report", "methods", "finetune", "evaluate", "compare", "train-scar",
            "synthesize", "design", "mine"]  # fmt: skip


def test_version_in_a_subprocess():
    proc = cli_subprocess("--version")
    assert proc.stdout.strip() == f"instructsift {__version__}"


def test_h_is_help_everywhere():
    top = cli("-h", check=False)
    assert top.returncode == 0 and "-h, --help" in top.output and "--version" in top.output
    for name in COMMANDS:
        short, long = cli(name, "-h", check=False), cli(name, "--help", check=False)
        assert short.returncode == 0, (name, short.output)
        assert short.output == long.output and f" {name} [OPTIONS]" in short.output


def _every_command(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command under `group` (sub-commands included)."""
    out = []
    for name, command in group.commands.items():
        out.append((*path, name))
        if isinstance(command, click.Group):
            out += _every_command(command, (*path, name))
    return out


def test_every_command_is_checked():
    assert {path[0] for path in _every_command(typer.main.get_command(app))} >= set(COMMANDS)


@pytest.mark.parametrize("path", _every_command(typer.main.get_command(app)), ids=" ".join)
def test_placeholders_are_not_python_types(path):
    out = cli(*path, "--help", width=200).output  # the whole help: arguments too
    shown = set(re.findall(r"<([^<>|]+)>", out))  # choices (<fail|skip>) name their values: they stay
    assert not shown, (path, shown)


def test_arguments_are_named_without_a_type():
    for args, line in [(["select"], "  DATA  "), (["run"], "  RECIPE  "), (["design"], "  SOURCE...  "),
                       (["methods"], "  [METHOD]  ")]:  # fmt: skip
        out = cli(*args, "--help", width=200).output
        assert line in out, (args, out)


def test_placeholders_name_the_kind_of_value():
    out = cli("compare", "--help", width=200).output
    assert re.search(r"--set TEXT\s", out) and re.search(r"--epochs NUMBER\s", out)
    assert (
        re.search(r"--random-seeds INTEGER\s", out)
        and re.search(r"--output PATH\s", out)
        and re.search(r"--eval TEXT\s", out)
    )


@pytest.mark.parametrize(("given", "shown"), [("ltd", "ltd"), ("LTD", "ltd"), ("superfiltering_d", "superfiltering-d"),
                                              ("ifd", "cherry (alias: ifd)"), ("IFD", "cherry (alias: ifd)")])  # fmt: skip
def test_methods_takes_a_name_an_alias_or_another_spelling(given, shown):
    res = cli("methods", given)
    assert res.output.splitlines()[0] == shown
    assert "options: --" in res.output and "\n\n" not in res.output.strip()  # one method's block only


def test_methods_refuses_an_unknown_name_with_the_known_ones():
    res = cli("methods", "nope", check=False)
    assert res.returncode == 2 and "unknown method 'nope'" in res.output and "superfiltering-d" in res.output
