"""Output safety, file modes, plain progress, the one cache root, exit codes and --help: no model needed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
import typer
from helpers import cli

from instructsift.accounting import check_not_empty, unscored_mask
from instructsift.atomic import atomic_path, write_text
from instructsift.data import read
from instructsift.data.errors import EmptyResultError, MissingColumnError, OptionError, OutputError, UserError
from instructsift.models import cache_root, use_cache_root
from instructsift.outputs import Output, check_inputs, check_outputs
from instructsift.progress import PlainProgress, progress_bar

ROWS = [{"instruction": "q", "output": "a"}]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(ROWS))
    return path


# -- outputs ---------------------------------------------------------------------------------------------


def test_an_input_is_never_an_output_by_any_name(data, tmp_path):
    (tmp_path / "link.json").symlink_to(data)
    os.link(data, tmp_path / "hard.json")
    (tmp_path / "sub").mkdir()
    for name in (data, tmp_path / "link.json", tmp_path / "hard.json", tmp_path / "sub" / ".." / "in.json"):
        with pytest.raises(OutputError, match="is the input"):
            check_outputs([data], [name], overwrite=True)
    # the input reached through a symlinked folder, before the output exists
    (tmp_path / "alias").symlink_to(tmp_path)
    with pytest.raises(OutputError, match="is the input"):
        check_outputs([data], [tmp_path / "alias" / "in.json"], overwrite=True)
    # a folder that holds the input is not replaced either
    with pytest.raises(OutputError, match="holds the input"):
        check_outputs([tmp_path / "sub" / "x.json"], [tmp_path / "sub"], overwrite=True)


def test_existing_outputs_need_overwrite_and_user_folders_are_never_replaced(data, tmp_path):
    old = tmp_path / "old.json"
    old.write_text("[]")
    with pytest.raises(OutputError, match=r"old.json: already exists; pass --overwrite to replace it"):
        check_outputs([data], [old])
    check_outputs([data], [old], overwrite=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a datasets folder; it is never replaced"):
        check_outputs([data], [mine], overwrite=True)
    (mine / "state.json").write_text("{}")  # a datasets folder an earlier run wrote: replaced with --overwrite
    check_outputs([data], [mine], overwrite=True)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(OutputError, match="not a model folder from `instructsift finetune`"):
        check_outputs([data], [Output(model, "model")], overwrite=True)
    (model / "instructsift-model.json").write_text("{}")
    with pytest.raises(OutputError, match="pass --overwrite"):
        check_outputs([data], [Output(model, "model")])
    check_outputs([data], [Output(model, "model")], overwrite=True)
    check_outputs([data], [Output(tmp_path / "new_model", "model")])  # a resumed run: no output yet


def test_output_kinds_and_collisions(data, tmp_path):
    with pytest.raises(OutputError, match=r"unknown output kind '.csv' \(accepted: .json, .jsonl"):
        check_outputs([data], [tmp_path / "x.csv"])
    with pytest.raises(OutputError, match=r"'.csv' \(accepted: .parquet, .jsonl\)"):
        check_outputs([data], [Output(tmp_path / "s.csv", "scores", "-o")])
    with pytest.raises(OutputError, match="'.json'"):
        check_outputs([data], [Output(tmp_path / "s.json", "scores")])
    (tmp_path / "x.json").mkdir()
    with pytest.raises(OutputError, match="is a folder, but a .json output is a file"):
        check_outputs([data], [tmp_path / "x.json"], overwrite=True)
    with pytest.raises(OutputError, match="--output and --save-scores are the same file"):
        check_outputs([data], [Output(tmp_path / "a.jsonl"), Output(tmp_path / "./a.jsonl", "scores", "--save-scores")])
    for ok in ("o.json", "o.jsonl", "o.jsonl.gz", "o.parquet", "o_folder"):
        check_outputs([data], [tmp_path / ok])


def test_inputs_that_are_not_what_their_name_says(tmp_path):
    (tmp_path / "d.json").mkdir()
    with pytest.raises(UserError, match="d.json: is a folder, but its name says a .json file"):
        check_inputs([tmp_path / "d.json"])
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a datasets folder"):
        check_inputs([tmp_path / "plain"])
    with pytest.raises(FileNotFoundError):  # a UserError that is still a FileNotFoundError
        check_inputs([tmp_path / "nope.json"])


# -- file modes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_get_the_mode_a_plain_open_would(tmp_path, mask, file_mode, dir_mode):
    from instructsift.api import write_scores
    from instructsift.data import write

    old = os.umask(mask)
    try:
        write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "folder", directory=True) as tmp:
            (tmp / "f").write_text("x")
        ds = read(_write(tmp_path / "in.json"))
        write(ds, [0], tmp_path / "out.jsonl")
        write_scores(pa.table({"row": [0], "id": ["a"]}), tmp_path / "s.parquet")
    finally:
        os.umask(old)
    for name in ("a.txt", "out.jsonl", "s.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == file_mode, name
    assert (tmp_path / "folder").stat().st_mode & 0o777 == dir_mode


def _write(path: Path) -> Path:
    path.write_text(json.dumps(ROWS))
    return path


# -- progress --------------------------------------------------------------------------------------------


def test_plain_progress_lines_off_a_terminal(monkeypatch):
    stream = io.StringIO()
    assert isinstance(progress_bar(True, stream), PlainProgress)  # a StringIO is no terminal
    with PlainProgress(True, stream, interval=0) as bar:
        task = bar.add_task("ifd", total=4, rate="")
        bar.advance(task, 2)
        bar.update(task, completed=4, rate="9.0 rows/s")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("ifd: 0/4 (0%)")
    assert lines[1].startswith("ifd: 2/4 (50%)") and "ETA" in lines[1]
    assert lines[-1].startswith("ifd: 4/4 (100%) · 9.0 rows/s")
    quiet = io.StringIO()
    with PlainProgress(False, quiet, interval=0) as bar:
        bar.advance(bar.add_task("x", total=1))
    assert quiet.getvalue() == ""
    monkeypatch.setenv("INSTRUCTSIFT_PROGRESS_SECONDS", "3600")
    slow = io.StringIO()
    with PlainProgress(True, slow) as bar:  # start and end lines only, none in between
        t = bar.add_task("x", total=100)
        for _ in range(100):
            bar.advance(t)
    assert len(slow.getvalue().splitlines()) == 2


# -- one cache root --------------------------------------------------------------------------------------


def test_use_cache_root_moves_every_cache(tmp_path):
    from instructsift.models.fingerprint import _memo_dir

    before = cache_root()
    with use_cache_root(tmp_path / "c"):
        assert cache_root() == tmp_path / "c" and _memo_dir() == tmp_path / "c" / "fingerprints"
    assert cache_root() == before
    with use_cache_root(None):
        assert cache_root() == before


# -- accounting ------------------------------------------------------------------------------------------


def test_a_missing_score_is_unscored_even_with_no_reason(data):
    table = pa.table(
        {
            "row": [0, 1, 2],
            "judge": [4.0, None, 5.0],
            "judge_reason": [None, None, None],  # a null score without a reason still counts
            "ifd": [0.5, 0.5, None],
            "reason": [None, None, "too long"],
        }
    )
    assert unscored_mask(table) == [False, True, True]
    ds = read(data)
    all_missing = pa.table({"row": [0], "judge": pa.array([None], pa.float64()), "judge_reason": ["no reply: x"]})
    with pytest.raises(EmptyResultError, match=r"no row could be scored \(judge: no reply: 1\)"):
        check_not_empty(ds, all_missing)
    check_not_empty(ds, all_missing, allow_empty=True)
    assert EmptyResultError.exit_code == 1 and UserError.exit_code == 2


def test_user_errors_stay_value_and_key_errors():
    assert issubclass(OptionError, ValueError) and issubclass(MissingColumnError, KeyError)
    assert str(MissingColumnError("no column 'x'")) == "no column 'x'"  # not quoted like a KeyError


# -- the CLI: exit codes, bugs, --help --------------------------------------------------------------------


def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(capsys):
    from instructsift.cli import _guard

    def user() -> None:
        raise OptionError("--top must be positive [see --help]")

    def bug() -> None:
        return {}["internal"]

    with pytest.raises(typer.Exit) as info:
        _guard(user)()
    assert info.value.exit_code == 2
    with pytest.raises(typer.Exit) as info:
        _guard(bug)()
    assert info.value.exit_code == 70
    err = capsys.readouterr().err
    assert "error: --top must be positive [see --help]" in err  # the user's brackets are text, not markup
    assert "Traceback" in err and "KeyError: 'internal'" in err and "a bug in instructsift" in err


def test_help_shows_bracketed_text_and_no_bool_metavar():
    env = {**os.environ, "COLUMNS": "300"}
    out = cli("select", "--method", "cherry", "--help", env=env).stdout
    for text in ("[CPU 8192, GPU 65536]", "'instructsift[gemma]'", "[method default]", "--overwrite", "--allow-empty"):
        assert text in " ".join(out.split()), text
    assert "<bool>" not in out
