"""Hub data sets for the other inputs: `--target` (read by `data.read` with the answer optional), a split
spelled into the input (`ID[@REVISION][:SUBSET]:SPLIT`, as `compare --eval` and `--target` take it),
`finetune`, `evaluate` and `report --data` with --split/--subset/--revision, and `compare` with its data's
split and each --eval's own.

No network: a folder in the hub's repository layout (data files and a README with a `configs:` block) is
read by `datasets.load_dataset` through the same builders as a hub id; a hub id itself is only tried offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from helpers import cli
from test_hub import OFFLINE, _jsonl

from instructsift.data import read
from instructsift.data.errors import InputError, OptionError
from instructsift.data.hub import Spelled, local_or_id, local_part, source_of, spelled
from instructsift.data.targets import read_targets

POOL = [
    {"instruction": f"Write the number {i} in words.", "output": w}
    for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven"])
]
HELD = [{"instruction": "Write the number 9 in words.", "output": "nine"}, {"instruction": "Say hi.", "output": "hi"}]
# Target rows: instructions alone, with a task field (what RDS+ groups by).
TARGETS = [
    {"instruction": "Write the number 12 in words.", "task": "numbers"},
    {"instruction": "Say hello politely.", "task": "greetings"},
]
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.jsonl
  - split: test
    path: data/test.jsonl
- config_name: targets
  data_files:
  - split: train
    path: targets/train.jsonl
- config_name: chat
  data_files:
  - split: train
    path: chat/train.jsonl
---
"""
CHAT = [{"messages": [{"role": "user", "content": "Say hello politely."}]}]  # a target without an answer


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data set repository in the hub's layout: train and test splits, a targets and a chat subset (a subset
    has one set of columns)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    root = tmp_path / "repo"
    _jsonl(root / "data/train.jsonl", POOL)
    _jsonl(root / "data/test.jsonl", HELD)
    _jsonl(root / "targets/train.jsonl", TARGETS)
    _jsonl(root / "chat/train.jsonl", CHAT)
    (root / "README.md").write_text(CARD, encoding="utf-8")
    return root


def _one_error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert "Traceback" not in stderr
    return line


# -- the spelled split --------------------------------------------------------------------------------------
def test_a_split_subset_and_revision_spelled_into_the_input(repo, tmp_path):
    assert spelled("org/name") == Spelled("org/name")
    assert spelled("org/name:test") == Spelled("org/name", "test")
    assert spelled("hf://org/name@v1.0:chat:train") == Spelled("hf://org/name", "train", "chat", "v1.0")
    assert spelled(f"{repo}:test") == Spelled(str(repo), "test")
    for kept in ("a.json", "org/name:a:b:c", "org/name:", "nowhere/x.jsonl:test", f"{repo}/none:test"):
        assert spelled(kept) == Spelled(kept)
    s = source_of("org/name@main:chat:test")
    assert (s.id, s.split, s.subset, s.revision) == ("org/name", "test", "chat", "main")
    with pytest.raises(OptionError, match="spells its own split"):
        source_of("org/name:test", split="train")
    # a local path that exists as spelled wins, and a hub-layout folder's spelled split stays local
    odd = tmp_path / "odd:test.jsonl"
    _jsonl(odd, POOL[:1])
    assert spelled(odd) == Spelled(str(odd)) and read(odd).n_read == 1
    assert local_part(f"{repo}:test") == repo and local_part("org/name:test") is None
    assert local_or_id(tmp_path / "repo:test", "repo:test") == tmp_path / "repo:test"
    assert local_or_id(tmp_path / "org/name:test", "org/name:test") == "org/name:test"
    assert [ex.response for ex in read(f"{repo}:test").examples] == ["nine", "hi"]
    assert read(f"{repo}:chat:train", answer_optional=True).n_read == 1


# -- targets through the one reader --------------------------------------------------------------------------
def test_answer_optional_is_the_callers_choice(repo):
    with pytest.raises(InputError, match="row 0, field 'output': missing"):
        read(repo, subset="targets")
    ds = read(repo, subset="targets", answer_optional=True)
    assert [[m.role for m in ex.messages] for ex in ds.examples] == [["user"], ["user"]]
    with pytest.raises(InputError, match="no assistant turn"):
        read(repo, subset="chat")


def test_targets_from_a_hub_layout_folder(repo, tmp_path):
    by_split = read_targets(repo, task_field="task", subset="targets")
    spelled_split = read_targets(f"{repo}:targets:train", task_field="task")
    assert by_split.tasks == spelled_split.tasks == ["numbers", "greetings"]
    assert [ex.content_hash for ex in by_split.examples] == [ex.content_hash for ex in spelled_split.examples]
    # the same rows from a plain file give the same examples; a chat target without an answer reads too
    plain = tmp_path / "t.jsonl"
    _jsonl(plain, TARGETS)
    assert [ex.content_hash for ex in read_targets(plain).examples] == [ex.content_hash for ex in by_split.examples]
    chat = read_targets(repo, subset="chat")
    assert chat.examples[0].messages == by_split.examples[1].messages and chat.tasks == ["target row 0"]
    with pytest.raises(InputError, match=r"row 0, field 'topic': missing: target_task_field= names it"):
        read_targets(f"{repo}:targets:train", task_field="topic")


def test_select_rds_with_a_hub_target_and_an_unreachable_one(repo, tmp_path, tiny_llama):
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(POOL))
    out = tmp_path / "picked.json"
    cli("select", pool, "--method", "rds", "--target", f"{repo}:targets:train", "--target-task-field", "task",
        "--model", tiny_llama, "--top", "2", "-o", out, "-q")  # fmt: skip
    picked = json.loads(out.read_text())
    assert len(picked) == 2 and all(r in POOL for r in picked)

    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    r = cli("select", pool, "--method", "rds", "--target", "someorg/targets:dev", "--model", tiny_llama, "--top", "2",
            "-o", tmp_path / "o.json", check=False, env=env)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert _one_error_line(r.stderr).startswith(
        "error: hub data set someorg/targets (split dev): could not be loaded: Couldn't reach 'someorg/targets'"
    )
    assert not (tmp_path / "o.json").exists()


def test_a_recipe_keeps_a_hub_target_and_eval_as_written(tmp_path):
    from instructsift.recipe import from_dict

    recipe = from_dict(
        {"input": "pool.json", "steps": [{"fit": "targets", "as": "t", "with": {"target": "org/tasks:dev"}}]},
        base=tmp_path,
    )
    assert recipe.steps[0].options["target"] == "org/tasks:dev"
    trial = from_dict({"input": "pool.json", "steps": [{"fit": "trial", "as": "t", "with": {"eval": "org/held:test"}}]})
    assert trial.steps[0].options["eval"] == "org/held:test"  # the trial step's held-out set
    local = from_dict(
        {"input": "pool.json", "steps": [{"fit": "targets", "as": "t", "with": {"target": "t.jsonl"}}]}, base=tmp_path
    )
    assert local.steps[0].options["target"] == str(tmp_path / "t.jsonl")


# -- finetune, evaluate, report ------------------------------------------------------------------------------
def test_finetune_and_evaluate_read_a_hub_split(repo, tmp_path, tiny_llama):
    model = tmp_path / "tuned"
    r = cli("finetune", repo, "--split", "train", "--model", tiny_llama, "--full", "--epochs", "1",
            "--batch-size", "4", "--max-length", "64", "--dtype", "float32", "--device", "cpu", "-o", model, "-q")  # fmt: skip
    assert re.search(rf"trained on \d+ sequences \({len(POOL)} examples, 0 skipped\)", r.stderr), r.stderr
    assert (model / "config.json").exists()

    held = tmp_path / "held.jsonl"
    _jsonl(held, HELD)
    common = ("--model", model, "--max-length", "64", "--dtype", "float32", "--device", "cpu", "-q")
    by_option = json.loads(cli("evaluate", repo, "--split", "test", *common).stdout)
    plain = json.loads(cli("evaluate", held, *common).stdout)
    assert by_option["examples"] == plain["examples"] == len(HELD) and by_option["loss"] == plain["loss"]

    r = cli("evaluate", held, "--split", "test", *common, check=False)
    assert r.returncode == 2 and "--split apply to a hub data set" in _one_error_line(r.stderr)


@pytest.mark.parametrize("command", ["finetune", "evaluate"])
def test_an_unreachable_hub_id_is_one_line_for_finetune_and_evaluate(command, tmp_path):
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    out = ["-o", tmp_path / "m"] if command == "finetune" else []
    r = cli(command, "someorg/some-data", "--split", "test", "--subset", "x", *out, check=False, env=env)
    assert r.returncode == 2, r.stderr
    assert _one_error_line(r.stderr) == (
        "error: hub data set someorg/some-data (split test, subset x): could not be loaded: "
        "Couldn't reach 'someorg/some-data' on the Hub (OfflineModeIsEnabled)"
    )
    assert not (tmp_path / "m").exists()


def test_report_reads_its_data_from_a_hub_split(repo, tmp_path):
    scores, page = tmp_path / "scores.parquet", tmp_path / "r.html"
    cli("score", repo, "--split", "test", "--method", "longest", "-o", scores, "-q")
    cli("report", scores, "--data", repo, "--split", "test", "-o", page)
    assert "Write the number 9 in words." in page.read_text(encoding="utf-8")
    # the same table with the train split's rows is not this data: read_scores says so
    r = cli("report", scores, "--data", f"{repo}:train", "-o", tmp_path / "r2.html", check=False)
    assert r.returncode == 2 and not (tmp_path / "r2.html").exists()
    _one_error_line(r.stderr)
    r = cli("report", scores, "--split", "test", "-o", tmp_path / "r3.html", check=False)
    assert r.returncode == 2 and "give --data" in _one_error_line(r.stderr)


# -- compare -----------------------------------------------------------------------------------------------
def test_compare_with_its_data_split_and_each_evals_own(repo, tmp_path, tiny_bpe_llama):
    from instructsift.experiments.compare_spec import load_spec

    held = tmp_path / "held.jsonl"
    _jsonl(held, HELD[:1])
    out, saved = tmp_path / "cmp", tmp_path / "cmp.yaml"
    cli("compare", repo, "--split", "train", "--eval", f"{repo}:test", "--eval", held, "--budget", "2",
        "--methods", "longest", "--random-seeds", "1", "--base", tiny_bpe_llama, "--epochs", "1", "--batch-size", "2",
        "--max-length", "256", "--no-plot", "-o", out, "-q", "--save-recipe", saved)  # fmt: skip
    r = json.loads((out / "results.json").read_text())
    assert r["data"]["examples"] == len(POOL) and r["eval"]["examples"] == len(HELD)
    assert [e["examples"] for e in r["more_evals"]] == [1]
    spec, base = load_spec(saved)
    assert (spec.data, spec.split, spec.evals) == ("repo", "train", ["repo:test", "held.jsonl"]) and base == tmp_path

    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    r = cli("compare", held, "--eval", "someorg/held@v2:test", "--budget", "1", "--methods", "longest",
            "--no-plot", "-o", tmp_path / "cmp2", check=False, env=env)  # fmt: skip
    assert r.returncode == 2
    assert _one_error_line(r.stderr).startswith(
        "error: hub data set someorg/held (split test, revision v2): could not be loaded"
    )
    assert not (tmp_path / "cmp2").exists()
