"""The CLI is generated from the registry: `score` and `select` take every registered method's options (one
flag per `Params` field, its help the field's description), `select --method M --help` shows M's own, a
method registered later gets its flags without a change to `cli/`, and no file of `cli/` names a method's
option."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import typer
from helpers import cli
from pydantic import Field

from instructsift import registry
from instructsift.cli import app
from instructsift.registry import Method, StrictModel

CLI_DIR = Path(__file__).resolve().parents[1] / "src" / "instructsift" / "cli"
# Modules of commands whose own options share a name with a method's (finetune's --max-length, compare's
# --target, report's --rule, evaluate's --batch-tokens): they are not method options, so the rule does not
# read them.
OWN_OPTIONS = {"train_cmds.py", "experiments.py", "report_cmd.py", "model_options.py"}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def help_of(*args: str) -> str:
    return cli(*args, "--help", width=200).output


def sections(text: str) -> dict[str, str]:
    """The help's sections by title ("Options", "Options of deita", ...)."""
    parts = re.split(r"^(\S[^\n]*):\n", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_method_option_is_a_flag_of_select_and_its_own_help_shows_it():
    every = registry.names("method")
    plain = help_of("select")
    for entry in registry.entries("method"):
        own = sections(help_of("select", "--method", entry.name))
        shown = own[f"Options of {entry.name}"]
        for name, field in entry.params.model_fields.items():
            assert re.search(rf"{flag(name)}(?![\w-])", shown), (entry.name, name)
            takers = [e.name for e in registry.entries("method") if name in e.params.model_fields]
            in_plain = re.search(rf"{flag(name)}(?![\w-])", plain) is not None
            assert in_plain == (takers == every), (entry.name, name)  # the plain help: every method's only
            if field.description:  # the method's own description, not another method's
                words = " ".join(field.description.split()[:3])
                assert words in " ".join(shown.split()), (entry.name, name, shown)
        others = {n for e in registry.entries("method") for n in e.params.model_fields} - set(entry.params.model_fields)
        text = "\n".join(own.values())
        assert not [n for n in others if re.search(rf"{flag(n)}(?![\w-])", text)], entry.name
        assert "--output" in own["Options"] and "--split" in own["Data source and export"]


@pytest.mark.parametrize("command", ["select", "score"])
def test_plain_help_is_short_shows_what_every_method_takes_and_says_how_to_see_one_method(command):
    text = cli(command, "--help", width=80).output
    assert len(text.splitlines()) <= 100, len(text.splitlines())
    assert f"{command} --method M --help shows the options of method M." in text
    parts = sections(text)
    assert [t for t in parts if t.startswith("Options of")] == (
        ["Options of every method"] if command == "select" else []
    )
    for one in ("--complexity-model", "--whiten", "--threshold", "--dtype", "--model"):  # some methods' own
        assert one not in text, one
        assert one in help_of(command, "--method", "deita" if one != "--whiten" else "rds")
    own = cli(command, "--method", "deita", "--help", width=80).output
    assert "shows the options of method M." not in own
    if command == "select":
        assert "--ratio" in parts["Options of every method"] and "--ratio" not in parts["Options"]
        # two meanings of --threshold, each its method's
        assert "keep judge >= this" in " ".join(help_of("select", "-m", "alpagasus").split())
        assert "skip a row with cosine" in " ".join(help_of("select", "-m", "deita").split())


@pytest.mark.parametrize("command", ["score", "select"])
def test_the_method_is_required_the_cli_names_no_default_method(command, tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi."}]))
    res = cli(command, data, "-o", tmp_path / "out.parquet", check=False)
    assert res.returncode == 2 and "Missing option '--method'" in res.output, res.output
    method = re.search(r"-m, --method TEXT(.*?)\n  -", help_of(command), flags=re.DOTALL)
    assert method and "[required]" in method.group(1), help_of(command)


def test_score_takes_no_size_and_says_the_methods_own_defaults():
    text = help_of("score", "--method", "deita")
    assert "--ratio" not in text and "--top" not in text and "--budget-tokens" not in text
    assert re.search(r"--complexity-model TEXT\s+the complexity scorer.*\[hkust-nlp/deita-complexity-scorer\]",
                     " ".join(text.split()))  # fmt: skip


def test_an_option_set_on_the_command_line_reaches_the_method(tmp_path):
    """DEITA's --min-mass could not be set from `select` before; an option the method does not take is
    refused with the options it takes."""
    rows = [{"instruction": f"task {i}", "input": "", "output": "x" * (i + 1)} for i in range(8)]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    res = cli("select", data, "-m", "deita", "--min-mass", 2, "--top", 2, "-o", tmp_path / "out.json", check=False)
    assert res.returncode == 2 and "min_mass" in res.output and "less than or equal to 1" in res.output
    res = cli("select", data, "-m", "longest", "--whiten", "--top", 2, "-o", tmp_path / "out.json", check=False)
    assert res.returncode == 2 and "method 'longest' does not take 'whiten'" in res.output
    cli("select", data, "-m", "longest", "--top", 2, "-o", tmp_path / "o.json")
    assert {r["output"] for r in json.loads((tmp_path / "o.json").read_text())} == {"x" * 8, "x" * 7}


class FrobParams(StrictModel):
    top: int = Field(ge=1, description="keep this many")
    frobnicate: int | None = Field(None, description="the draw's seed, frobnicated")
    sparkle: bool = Field(False, description="sparkle first")


def _frob_steps(p: FrobParams) -> list[dict]:
    return [registry.step("select", "random", k=p.top, seed=(p.frobnicate or 0) + (7 if p.sparkle else 0))]


@pytest.fixture
def frob(monkeypatch):
    """A throwaway method with new options, registered for one test and unregistered after it."""
    registry.load_all()
    method = Method(name="frob", paper="none", summary="a throwaway method", Params=FrobParams, steps=_frob_steps)
    entry = registry.Entry("method", "frob", method, FrobParams, (), method.summary)
    monkeypatch.setitem(registry._ENTRIES, ("method", "frob"), entry)
    monkeypatch.setitem(registry._BY_TARGET, method, entry)
    return method


def test_a_method_registered_later_has_its_flags_without_a_cli_change(frob, monkeypatch, tmp_path):
    own = sections(help_of("select", "--method", "frob"))["Options of frob"]
    assert re.search(r"--frobnicate INTEGER\s+the draw's seed, frobnicated\.", own) and "--sparkle" in own
    assert "--whiten" not in own and "--top" in own
    assert "--frobnicate" not in help_of("select")  # frob's own: `select --method frob --help`
    rows = [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(10)]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    picks = []
    for extra in (["--frobnicate", "3"], ["--frobnicate", "3"], ["--frobnicate", "3", "--sparkle"]):
        out = tmp_path / f"out{len(picks)}.json"
        cli("select", data, "-m", "frob", "--top", 4, *extra, "-o", out, "-q")
        picks.append([r["instruction"] for r in json.loads(out.read_text())])
    assert len(picks[0]) == 4 and picks[0] == picks[1] and picks[0] != picks[2]
    monkeypatch.undo()  # unregistered: its flags are gone
    assert "frob" not in registry.names("method") and "--frobnicate" not in help_of("select")


def named_options(path: Path, names: set[str]) -> set[str]:
    """The method options a module's string literals (docstrings too) name: a flag (`--min-mass`), a
    field name with `_` (`judge_url`) anywhere, or a one-word name (`seed`) as a whole string."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = set(re.findall(r"--[a-z][a-z-]*|\b[a-z][a-z_]*\b", node.value))
            found |= {n for n in names if flag(n) in words or node.value == n or ("_" in n and n in words)}
    return found


def test_no_method_option_is_named_in_the_cli():
    """The rule: `cli/` names no registered method's option (its field name or flag) outside the modules of
    commands that have options of their own; the method options come from the registry."""
    names = {n for e in registry.entries("method") for n in e.params.model_fields}
    modules = [p for p in sorted(CLI_DIR.glob("*.py")) if p.name not in OWN_OPTIONS]
    assert {p.name for p in modules} >= {"__init__.py", "core.py", "options.py", "method_options.py", "data_cmds.py"}
    found = {(p.name, n) for p in modules for n in named_options(p, names)}
    assert not found, found


def test_the_rule_sees_a_named_option(tmp_path):
    path = tmp_path / "x.py"
    path.write_text('OPT = typer.Option("--complexity-model")\nKEYS = {"judge_url": None, "seed": 0}\n"""a seed"""\n')
    names = {"complexity_model", "judge_url", "seed", "whiten"}
    assert named_options(path, names) == {"complexity_model", "judge_url", "seed"}


def test_every_method_option_has_a_description_for_its_help():
    missing = [(e.name, n) for e in registry.entries("method") for n, f in e.params.model_fields.items()
               if not f.description]  # fmt: skip
    assert not missing, missing


def test_score_refuses_an_option_that_only_chooses_rows(tmp_path):
    """`score` runs a method's scorers alone: an option that changes only its selectors (read from the
    method's steps) is an error, exit 2; one that changes a scorer is taken."""
    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi."}]))
    out = str(tmp_path / "s.parquet")
    for args, flag_ in ((["-m", "lima", "--per-category", "3"], "--per-category"),
                        (["-m", "alpagasus", "--threshold", "4"], "--threshold"),
                        (["-m", "deita", "--threshold", "0.8"], "--threshold")):  # fmt: skip
        res = cli("score", data, *args, "-o", out, check=False)
        assert res.returncode == 2, res.output
        assert f"{flag_} only chooses rows" in res.output and "give it to `select`" in res.output
    superfiltering = registry.get("method", "superfiltering").target
    assert superfiltering.expand({"max_length": 256}, score_only=True) != superfiltering.expand({}, score_only=True)


def test_the_command_line_is_parsed_in_cli_only():
    """One front end: no module of the package outside `cli/` parses a command line of its own (argparse,
    click, typer, or a `__main__` block): `instructsift design` is InstructMining's design, not a second
    `python -m instructsift.experiments.design`."""
    found = []
    for path in sorted(CLI_DIR.parent.rglob("*.py")):
        if CLI_DIR in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if {n.split(".")[0] for n in names} & {"argparse", "click", "typer"}:
                found.append((path.name, names))
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "__name__":
                found.append((path.name, "__main__"))
    assert not found, found


# -- finetune: its training options are generated from the `finetune` fit step's parameter model -------------
def test_every_training_setting_is_a_finetune_flag_with_its_description_and_default():
    text = " ".join(help_of("finetune").split())
    params = registry.get("fit", "finetune").params
    for name, field in params.model_fields.items():
        if name in ("model", "trust_remote_code"):  # --model and --trust-remote-code: the command's own
            continue
        assert flag(name) in text, name
        assert field.description and field.description.rstrip(".") in text, name
        if not isinstance(field.default, bool) and field.default is not None:
            assert f"{field.description.rstrip('.')}. [default: {field.default}]" in text, name
    # the flags and defaults the command had before its options were generated
    for shown in ("--lora / --full", "--eos / --no-eos", "--epochs NUMBER", "[default: 3.0]", "--lr NUMBER",
                  "--batch-size INTEGER", "--save TEXT", "[default: merged]", "--model TEXT", "--restart"):  # fmt: skip
        assert shown in text, shown


def test_a_field_added_to_the_finetune_settings_is_a_flag_without_a_cli_change(monkeypatch):
    from pydantic import create_model

    entry = registry.get("fit", "finetune")
    params = create_model("P", __base__=entry.params, frobnicate=(int, Field(7, description="the frob count")))
    monkeypatch.setattr(entry, "params", params)
    assert re.search(r"--frobnicate INTEGER\s+the frob count\.\s+\[default: 7\]", help_of("finetune"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--full", "--save", "adapter"], "save='adapter' needs LoRA"),  # --full is lora=False
        (["--batch-size", "0"], "batch_size must be positive"),
        (["--dtype", "float8"], "dtype must be one of auto, float32, bfloat16, float16"),
    ],
)
def test_finetune_hands_the_given_settings_to_its_config(args, said, tmp_path):
    res = cli("finetune", "nowhere.json", "-o", tmp_path / "m", *args, check=False)
    assert res.returncode == 2 and said in res.output, res.output


# -- compare: its win-rate options are generated from the judge's settings (`JudgeSpec`) ---------------------
def test_every_judge_setting_is_a_compare_flag_in_the_win_rate_section():
    from instructsift.experiments.winrate import JudgeSpec

    text = " ".join(help_of("compare").split())
    flags = [registry.flag(n, f) for n, f in JudgeSpec.model_fields.items()]
    assert flags == ["--judge-url", "--judge-model", "--judge-key-env", "--judge-dimension", "--judge-prompt",
                     "--judge-concurrency", "--judge-timeout", "--judge-retries", "--judge-max-tokens",
                     "--max-new-tokens", "--gen-batch-size"]  # fmt: skip  # the flags compare always had
    for name, field in JudgeSpec.model_fields.items():
        assert f"{registry.flag(name, field)} " in text and f"win rate: {field.description}" in text, name
    assert "--judge-prompt PATH" in text and "tokens each tuned model may answer with [256]." in text
    command = typer.main.get_command(app).commands["compare"]
    panels = {p.name: getattr(p, "rich_help_panel", None) for p in command.params}
    assert panels["gen_batch_size"] == panels["judge_url"] == "Win rate vs random" and panels["batch_size"] is None


def test_a_field_added_to_the_judge_settings_is_a_compare_flag_without_a_cli_change(monkeypatch):
    from pydantic import create_model

    from instructsift.experiments import winrate

    extra = Field(0.5, description="the judge's temperature", json_schema_extra={"flag": "judge-temperature"})
    monkeypatch.setattr(winrate, "JudgeSpec", create_model("J", __base__=winrate.JudgeSpec, temperature=(float, extra)))
    assert re.search(r"--judge-temperature NUMBER\s+win rate: the judge's temperature \[0\.5\]\.", help_of("compare"))


# -- compare: its fine-tuning options are FinetuneConfig's fields that `compare_spec.COMMAND_TUNING` offers ----
def test_compare_fine_tuning_flags_are_finetune_settings_with_their_descriptions_and_defaults(monkeypatch):
    from instructsift.experiments import compare_spec
    from instructsift.train.finetune import FinetuneConfig

    fields = registry.params_of(FinetuneConfig).model_fields
    text = " ".join(help_of("compare").split())
    for name in compare_spec.COMMAND_TUNING:
        default = "" if fields[name].default is None else f" [default: {fields[name].default}]"
        assert f"{flag(name)} " in text and f"{fields[name].description.rstrip('.')}.{default}" in text, name
    assert "--grad-accum" not in text and "--lora" not in text  # not offered (`--full` is compare's own)
    monkeypatch.setattr(compare_spec, "COMMAND_TUNING", (*compare_spec.COMMAND_TUNING, "grad_accum"))
    assert re.search(r"--grad-accum INTEGER\s+Steps accumulated per update\.\s+\[default: 1\]", help_of("compare"))
