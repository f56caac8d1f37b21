"""The bad-input regression corpus (tests/badinput/make_corpus.py), run through the real command.

Each case: the exit code, the message on one `error:` line without a traceback, the user's files
untouched, and under `--on-error skip` the accounting read = kept + dropped + rejected. All cases share
one --cache-dir (the same good rows every time, so they are scored once), and the default cache
($INSTRUCTSIFT_CACHE, ~/.cache/instructsift) must stay empty: --cache-dir holds models and fingerprints too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("make_corpus", HERE / "badinput" / "make_corpus.py")
corpus = importlib.util.module_from_spec(_spec)
sys.modules["make_corpus"] = corpus  # dataclasses look their module up
_spec.loader.exec_module(corpus)


@pytest.fixture(scope="module")
def world(tmp_path_factory, _session_cache):
    """The corpus folder, its cases by name, --cache-dir (the test session's cache, so that the embedded
    model is converted once per session), and a default cache that must stay empty."""
    root = tmp_path_factory.mktemp("badinput")
    cases = {c.name: c for c in corpus.build(root / "corpus")}
    default_cache, home = root / "default-cache", root / "home"
    default_cache.mkdir()
    home.mkdir()
    yield {"cases": cases, "cache": _session_cache, "default_cache": default_cache, "home": home}
    assert not any(default_cache.iterdir()), f"written outside --cache-dir: {list(default_cache.rglob('*'))[:5]}"
    assert not (home / ".cache" / "instructsift").exists()


def run_cli(world: dict, args: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "INSTRUCTSIFT_CACHE": str(world["default_cache"]),
        "HOME": str(world["home"]),
        "HF_HOME": os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
    }
    return cli(*args, "--cache-dir", world["cache"], check=False, env=env)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", [c.name for c in corpus.CASES])
def test_bad_input_case(world, name):
    case = world["cases"][name]
    before = {p: _digest(p) for p in case.unchanged}
    proc = run_cli(world, case.args)
    err = proc.stderr
    assert proc.returncode == case.code, f"{case.args} exited {proc.returncode}, expected {case.code}:\n{err}"
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.code:
        assert len(errors) == 1, err  # one line, not a wall
        assert case.message in errors[0], f"{case.message!r} not in {errors[0]!r}"
    else:
        assert not errors and case.message in err, err
    assert {p: _digest(p) for p in case.unchanged} == before, "a user's file was changed"
    if case.accounting:
        line = [x for x in err.splitlines() if x.startswith("read ")][-1]
        n = {k: int(v) for v, k in ((m.group(2), m.group(1)) for m in re.finditer(r"(\w+) (\d+)", line))}
        assert n["read"] == n["kept"] + n["dropped"] + n["rejected"], line
        out = case.args[case.args.index("-o") + 1]
        assert f"→ {out}" in line, line  # the path as given, brackets and all (no rich markup)
        if "--on-error" in case.args:  # every rejected row is in the rejects file
            rejects = Path(out + ".rejects.jsonl").read_text().splitlines()
            assert len(rejects) == n["rejected"]


def test_corpus_script_writes_the_cases(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(HERE / "badinput" / "make_corpus.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cases.json").exists() and (tmp_path / "good.json").exists()


def test_progress_lines_in_a_log_and_every_cache_under_cache_dir(world, monkeypatch):
    """stderr is a pipe here, as under nohup or CI: plain progress lines, with done/total, rate and ETA."""
    good = next(c for c in world["cases"].values() if c.name == "selection_keeps_nothing").args[-3]
    out = Path(good).with_name("progress.parquet")
    monkeypatch.setenv("INSTRUCTSIFT_PROGRESS_SECONDS", "0")
    proc = run_cli(world, ["score", good, "--method", "superfiltering", "--no-cache", "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("ifd: ") and "/3" in x]
    assert lines[0].startswith("ifd: 0/3 (0%)") and lines[-1].startswith("ifd: 3/3 (100%)"), proc.stderr
    assert all("elapsed" in x for x in lines)
    assert {p.name for p in world["cache"].iterdir()} >= {"fingerprints", "scores"}  # models: $INSTRUCTSIFT_MODELS
