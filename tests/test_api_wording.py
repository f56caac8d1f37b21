"""The Python API speaks Python, the CLI its flags: an option error names the options `ratio=` through the
API and `--ratio` on the command line (one `OptionError` carrying the option names, spelled by each front
end); a missing input file is a FileNotFoundError through the API and exit 2 on the command line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from helpers import cli

import instructsift as isf
from instructsift.cli.core import cli_message
from instructsift.data.errors import MissingFileError, OptionError, Placeholder, UserError, with_prefix
from instructsift.errors import UsageError

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json"

# (method, its options in Python, the same on the command line, the Python message, the CLI message)
CASES = [
    (
        "cherry",
        {},
        [],
        "method 'cherry': needs exactly one of ratio= or top= (or budget_tokens=)",
        "method 'cherry': needs exactly one of --ratio or --top (or --budget-tokens)",
    ),
    (
        "cherry",
        {"ratio": 0.1, "top": 3},
        ["--ratio", "0.1", "--top", "3"],
        "method 'cherry': needs exactly one of ratio= or top=, not both",
        "method 'cherry': needs exactly one of --ratio or --top, not both",
    ),
    (
        "lima",
        {"min_chars": 10, "max_chars": 5, "top": 3},
        ["--min-chars", "10", "--max-chars", "5", "--top", "3"],
        "method 'lima': min_chars=10 is above max_chars=5",
        "method 'lima': --min-chars 10 is above --max-chars 5",
    ),
    (
        "lima",
        {"clusters": 4},
        ["--clusters", "4"],
        "method 'lima': clusters= needs per_category=N or top=/ratio=: how many to keep",
        "method 'lima': --clusters needs --per-category N or --top/--ratio: how many to keep",
    ),
]


@pytest.mark.parametrize(("method", "options", "args", "python", "command_line"), CASES)
def test_python_names_fields_and_cli_names_flags(method, options, args, python, command_line, tmp_path):
    with pytest.raises(UsageError) as e:
        isf.get_method(method).scorers(**options)
    assert str(e.value) == python
    assert cli_message(e.value) == command_line  # the same error, as the CLI prints it
    proc = cli("select", SAMPLE, "--method", method, *args, "-o", tmp_path / "out.json", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"error: {command_line}"
    assert not (tmp_path / "out.json").exists()


def test_a_recipe_and_a_scorer_keep_the_option_names():
    with pytest.raises(UsageError) as e:
        isf.recipe_from_method("cherry", {}, input=str(SAMPLE))
    assert "needs exactly one of ratio= or top=" in str(e.value) and "--" not in str(e.value)
    assert "needs exactly one of --ratio or --top" in cli_message(e.value)
    from instructsift.scoring.judge import Judge

    with pytest.raises(OptionError) as e:
        Judge(judge_url="http://127.0.0.1:9/v1")
    assert str(e.value) == "judge_url= needs judge_model=: the model name the server serves"
    assert cli_message(e.value) == "--judge-url needs --judge-model: the model name the server serves"


def test_option_error_spelling_prefix_and_pickling():
    e = OptionError("give {target} or {top}, not {{both}}", "top", target=Placeholder("FILE"))
    assert str(e) == "give target=FILE or top=, not {both}"
    assert cli_message(e) == "give --target FILE or --top, not {both}"
    plain = OptionError("a {brace} that is text")  # no options named: the message is plain text
    assert str(plain) == cli_message(plain) == "a {brace} that is text"
    wrapped = with_prefix("method '{x}': ", OptionError("{min_chars} too big", min_chars="a b"), UsageError)
    assert isinstance(wrapped, UsageError)
    assert str(wrapped) == "method '{x}': min_chars='a b' too big"
    assert cli_message(wrapped) == "method '{x}': --min-chars a b too big"
    back = pickle.loads(pickle.dumps(wrapped))  # Ray sends errors between processes
    assert type(back) is UsageError and str(back) == str(wrapped) and cli_message(back) == cli_message(wrapped)


def test_a_missing_input_is_file_not_found_in_python(tmp_path):
    missing = tmp_path / "missing.json"
    ds = isf.read(SAMPLE)
    calls = [
        lambda: isf.read(missing),
        lambda: isf.score(missing, []),
        lambda: isf.select(str(missing), None),
        lambda: isf.read_scores(tmp_path / "missing.parquet", ds),
        lambda: isf.run(tmp_path / "missing.yaml"),
    ]
    for call in calls:
        with pytest.raises(FileNotFoundError) as e:
            call()
        assert isinstance(e.value, MissingFileError) and "missing." in str(e.value)
    scores = isf.score(SAMPLE, [isf.get_method("longest").scorers(top=2)[0]], cache_dir=tmp_path, progress=False)
    assert scores.num_rows == len(ds.examples)  # a path is read, as `isf.read` would


def test_a_missing_input_is_exit_2_on_the_command_line(tmp_path):
    for args in (
        ["select", tmp_path / "missing.json", "--method", "longest", "--top", "2", "-o", tmp_path / "o.json"],
        [
            "select",
            SAMPLE,
            "--method",
            "longest",
            "--top",
            "2",
            "--scores",
            tmp_path / "missing.parquet",
            "-o",
            tmp_path / "o.json",
        ],  # fmt: skip
        ["run", tmp_path / "missing.yaml"],
    ):
        proc = cli(*args, check=False)
        assert proc.returncode == 2 and "missing." in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_token_budget_names_its_option_each_way():
    with pytest.raises(UsageError) as e:
        isf.get_method("cherry").expand({"budget_tokens": 1.5})
    why = "1.5 is not a share between 0 and 1 (0.05 for 5%); a count is a whole number: 200000"
    assert str(e.value).endswith(f"budget_tokens={why}")
    assert cli_message(e.value).endswith(f"--budget-tokens {why}")
    from instructsift.selection.size import Amount

    with pytest.raises(OptionError) as e:  # words, not an option: the same either way
        Amount(10**7, "tokens", "the token budget").resolve(1234)
    assert (
        str(e.value)
        == cli_message(e.value)
        == ("the token budget 10,000,000 is more than the 1,234 trained answer tokens of the data set")
    )


def test_any_user_error_may_name_options_a_switch_included(tmp_path):
    from instructsift.accounting import check_not_empty
    from instructsift.data.errors import EmptyResultError

    bad = tmp_path / "all{bad}.jsonl"  # braces in user text stay text
    bad.write_text('{"instruction": 1}\n')
    ds = isf.read(bad, on_error="skip")
    with pytest.raises(EmptyResultError) as e:
        check_not_empty(ds)
    assert str(e.value).startswith(f"{bad}: nothing could be read: all 1 rows were rejected")
    assert str(e.value).endswith("see the rejects file, or pass allow_empty=True to write an empty result")
    assert cli_message(e.value).endswith("see the rejects file, or pass --allow-empty to write an empty result")
    assert e.value.exit_code == 1
    assert cli_message(OptionError("{quiet}, {cache}", quiet=True, cache=False)) == "--quiet, --no-cache"


# (the judge's options in a recipe, the Python message's tail, the CLI message's tail): the classes behind the
# judge scorer check their own fields (`ServerJudge(concurrency=)`), and the scorer renames the options their
# errors name to its own (`judge_concurrency=`), so that neither front end sees the class's field names
SERVER = {"judge_url": "http://127.0.0.1:9/v1", "judge_model": "m"}
JUDGE_CASES = [
    (
        SERVER | {"judge_concurrency": 0},
        "judge_concurrency= must be at least 1, got 0",
        "--judge-concurrency must be at least 1, got 0",
    ),
    (
        SERVER | {"judge_key_env": "ISF_TEST_UNSET_KEY"},
        "judge_key_env='ISF_TEST_UNSET_KEY': that environment variable is not set",
        "--judge-key-env ISF_TEST_UNSET_KEY: that environment variable is not set",
    ),
    (
        SERVER | {"judge_retries": -1},
        "judge_retries= must be at least 0, got -1",
        "--judge-retries must be at least 0, got -1",
    ),
    (
        {"judge_min_mass": 2.0},
        "judge_min_mass= must be between 0 and 1, got 2.0",
        "--judge-min-mass must be between 0 and 1, got 2.0",
    ),
]


@pytest.mark.parametrize(("options", "python", "command_line"), JUDGE_CASES)
def test_the_judge_names_its_options_each_way(options, python, command_line, tmp_path, monkeypatch):
    import json

    from instructsift.scoring.judge import Judge

    monkeypatch.delenv("ISF_TEST_UNSET_KEY", raising=False)
    with pytest.raises(OptionError) as e:
        Judge(**options)
    assert str(e.value) == python and cli_message(e.value) == command_line
    recipe = tmp_path / "judge.yaml"  # a recipe: the one way the command line reaches the scorer's own checks
    steps = [{"score": "judge", "with": options}, {"select": "top", "with": {"column": "judge", "k": 1}}]
    recipe.write_text(json.dumps({"input": str(SAMPLE), "output": str(tmp_path / "o.json"), "steps": steps}))
    with pytest.raises(UsageError) as e:
        isf.run(recipe, progress=False)
    assert str(e.value).endswith(python)
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(command_line), proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_a_factory_renames_the_fields_a_class_names():
    from instructsift.data.errors import renamed
    from instructsift.scoring.judge import FIELDS, Judge
    from instructsift.scoring.judge_client import ServerJudge

    e = OptionError("{concurrency} of {{braces}} or {top}", "top", concurrency=3)
    back = renamed(e, FIELDS)
    assert type(back) is OptionError and str(back) == "judge_concurrency=3 of {braces} or top="
    assert (
        cli_message(back) == "--judge-concurrency 3 of {braces} or --top"
        and str(e) == "concurrency=3 of {braces} or top="
    )
    with pytest.raises(OptionError) as e:  # the class's own check, as the factory's option
        ServerJudge(url="http://127.0.0.1:9/v1", model="m", timeout=0)
    assert str(e.value) == "timeout= must be above 0 seconds, got 0"
    with pytest.raises(OptionError) as e:
        Judge(**SERVER, judge_timeout=0)
    assert str(e.value) == "judge_timeout= must be above 0 seconds, got 0"
    assert cli_message(e.value) == "--judge-timeout must be above 0 seconds, got 0"


def test_the_judge_classes_name_their_own_fields(monkeypatch):
    from instructsift.scoring.judge_client import ServerJudge
    from instructsift.scoring.judge_local import LocalJudge

    monkeypatch.delenv("ISF_TEST_UNSET_KEY", raising=False)
    for make, message in [
        (lambda: ServerJudge(url="http://127.0.0.1:9/v1", model="m", concurrency=0), "concurrency= must be at least 1"),
        (
            lambda: ServerJudge(url="http://127.0.0.1:9/v1", model="m", key_env="ISF_TEST_UNSET_KEY"),
            "key_env='ISF_TEST_UNSET_KEY': that environment variable is not set",
        ),
        (lambda: LocalJudge(min_mass=-0.5), "min_mass= must be between 0 and 1, got -0.5"),
    ]:
        with pytest.raises(OptionError) as e:
            make()
        assert str(e.value).startswith(message) and "--" not in str(e.value)


def test_a_tokenizer_without_eos_names_the_switch_each_way(tiny_llama, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    from instructsift.train.evaluate import evaluate

    model = tmp_path / "no-eos"
    shutil.copytree(tiny_llama, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.eos_token = None
    tok.save_pretrained(model)
    data = isf.read(SAMPLE).examples[:2]
    with pytest.raises(OptionError) as e:
        evaluate(data, str(model), progress=False, device="cpu")
    assert str(e.value) == "the tokenizer has no EOS token: turn EOS off (eos=False)"
    proc = cli("evaluate", SAMPLE, "--model", model, "--device", "cpu", check=False)
    assert (
        proc.returncode == 2 and proc.stderr.strip() == "error: the tokenizer has no EOS token: turn EOS off (--no-eos)"
    )
    assert evaluate(data, str(model), eos=False, progress=False, device="cpu").examples == 2  # off: it runs


def test_an_unset_key_variable_names_the_option_each_way(tmp_path, monkeypatch):
    from instructsift.train.synthesize import Generator

    monkeypatch.delenv("ISF_TEST_UNSET_KEY", raising=False)
    gen = Generator(model="m", url="http://127.0.0.1:9/v1", key_env="ISF_TEST_UNSET_KEY")
    with pytest.raises(OptionError) as e:
        gen.generate(["Say hi."], lambda *answer: None)
    assert str(e.value) == "key_env='ISF_TEST_UNSET_KEY': that environment variable is not set"
    out = tmp_path / "quads.jsonl"
    args = ["--url", "http://127.0.0.1:9/v1", "--model", "m", "--key-env", "ISF_TEST_UNSET_KEY"]
    proc = cli("synthesize", SAMPLE, "-o", out, *args, "--cache-dir", tmp_path / "cache", "-q", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().endswith("error: --key-env ISF_TEST_UNSET_KEY: that environment variable is not set")
    assert not out.exists()


def test_a_bad_field_map_names_the_option_each_way(tmp_path):
    import json

    known = "is no field of a format (known: instruction, input, output, system, history, messages, conversations)"
    recipe = tmp_path / "fields.yaml"  # a recipe's field map: read by the Python API and the command line alike
    steps = [{"score": "lengths"}, {"select": "top", "with": {"column": "output_chars", "k": 1}}]
    spec = {"input": str(SAMPLE), "output": str(tmp_path / "o.json"), "fields": {"instr": "prompt"}, "steps": steps}
    recipe.write_text(json.dumps(spec))
    with pytest.raises(OptionError) as e:
        isf.run(recipe, progress=False)
    assert str(e.value) == f"fields=: 'instr' {known}"
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: --fields: 'instr' {known}", proc.stderr
    args = ["select", SAMPLE, "--method", "longest", "--top", "1", "-o", tmp_path / "o.json"]
    proc = cli(*args, "--fields", "instruction prompt", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().endswith("--fields 'instruction prompt': expected FIELD=NAME pairs, e.g. "
                                        "instruction=prompt,output=completion")  # fmt: skip
    assert not (tmp_path / "o.json").exists()


def test_an_unknown_output_format_names_the_option_each_way(tmp_path):
    known = "unknown format (known: alpaca, sharegpt, openai)"
    with pytest.raises(OptionError) as e:
        isf.write(isf.read(SAMPLE), tmp_path / "o.json", to="csv")
    assert str(e.value) == f"to='csv': {known}" and cli_message(e.value) == f"--to 'csv': {known}"
    assert not (tmp_path / "o.json").exists()
    # the command line checks --to (and a recipe its `to:`) against the formats before this check is reached
    args = ["select", SAMPLE, "--method", "longest", "--top", "1", "-o", tmp_path / "o.json", "--to", "csv"]
    proc = cli(*args, check=False)
    assert proc.returncode == 2 and "'csv' is not one of 'alpaca', 'sharegpt', 'openai'" in proc.stderr, proc.stderr


def test_a_bad_server_url_names_the_option_each_way(tmp_path):
    from instructsift.scoring.judge import Judge
    from instructsift.train.synthesize import Generator

    expected = "'127.0.0.1:8000': expected http(s)://host[:port][/path], e.g. http://127.0.0.1:8000/v1"
    with pytest.raises(OptionError) as e:
        Judge(judge_url="127.0.0.1:8000", judge_model="m")
    assert str(e.value) == f"judge_url={expected}"
    with pytest.raises(OptionError) as e:
        Generator(url="127.0.0.1:8000")
    assert str(e.value) == f"url={expected}" and cli_message(e.value) == f"--url {expected}"
    args = ["--judge-url", "127.0.0.1:8000", "--judge-model", "m", "-o", tmp_path / "o.json"]
    proc = cli("select", SAMPLE, "--method", "alpagasus", *args, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(f"--judge-url {expected}"), proc.stderr
    assert not (tmp_path / "o.json").exists()


def _data_errors(tmp_path):
    """(a call that fails on bad data or a file it reads, the tail of its Python message, the same as the CLI
    prints it)."""
    import json

    from instructsift.data import convert
    from instructsift.data.targets import read_targets
    from instructsift.report.readers import read_dropped, read_rule

    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "rule.json").write_text('{"r2": 1}')
    chat = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                         {"role": "assistant", "content": "c"}]}  # fmt: skip
    return [
        (
            lambda: isf.read(unknown),
            "pass format=, or name the fields with fields={'instruction': 'prompt', 'output': 'completion'}",
            "pass --format, or name the fields with --fields instruction=prompt,output=completion",
        ),
        (
            lambda: isf.read(unknown, answer_optional=True),
            "pass format=, or name it with fields={'instruction': 'prompt'}",
            "pass --format, or name it with --fields instruction=prompt",
        ),
        (
            lambda: isf.read(tmp_path / "empty.jsonl"),
            "no records; pass allow_empty=True to write an empty result",
            "no records; pass --allow-empty to write an empty result",
        ),
        (
            lambda: read_targets(SAMPLE, task_field="category"),
            "field 'category': missing: target_task_field= names it",
            "field 'category': missing: --target-task-field names it",
        ),
        (
            lambda: list(convert.records([chat], "openai", "alpaca", None, "chat.jsonl")),
            "(write it to='openai' or sharegpt)",
            "(write it --to openai or sharegpt)",
        ),
        (
            lambda: read_dropped(tmp_path / "d.jsonl"),
            "d.jsonl: no such file (dropped=)",
            "d.jsonl: no such file (--dropped)",
        ),
        (
            lambda: read_rule(tmp_path / "rule.json"),
            "no coefficients found (rule= expects InstructMining's fitted rule JSON, with `coef`)",
            "no coefficients found (--rule expects InstructMining's fitted rule JSON, with `coef`)",
        ),
    ]


def test_data_and_report_errors_name_options_each_way(tmp_path):
    for call, python, command_line in _data_errors(tmp_path):
        with pytest.raises(UserError) as e:
            call()
        assert str(e.value).endswith(python) and "--" not in str(e.value), str(e.value)
        assert cli_message(e.value).endswith(command_line), cli_message(e.value)


def test_mine_names_its_output_as_python_and_as_the_command_line_take_it(tmp_path):
    from instructsift.data.errors import renamed
    from instructsift.experiments.mine_run import check_output

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as e:
        check_output(tmp_path, {"pool": 3})
    why = ": a folder of other files (no settings.json); give a new or empty folder"
    assert str(e.value) == f"out={str(tmp_path)!r}{why}"  # `mine_design(design, out)`
    assert cli_message(renamed(e.value, {"out": "output"})) == f"--output {tmp_path}{why}"  # as `mine` renames it
