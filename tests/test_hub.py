"""Hub data sets in (`org/name`, a folder in the hub's layout, --split/--subset/--streaming, --fields), trainer
formats out (--to), the data set card, --push-to-hub's refusal, and one TRL SFTTrainer step on an export.

No network: a folder in the hub's repository layout (data files and a README with a `configs:` block) is
read by `datasets.load_dataset` through the same builders as a hub id; a hub id itself is only tried offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import cli

from instructsift.data import read
from instructsift.data.convert import convert
from instructsift.data.errors import OptionError

ROWS = [
    {"prompt": "Say hello to the reader.", "completion": "Hello, reader! Nice to meet you.", "source": "a"},
    {"prompt": "Add two and two.", "completion": "Four.", "source": "b"},
    {"prompt": "Name a primary colour.", "completion": "Blue is a primary colour of light and paint.", "source": "c"},
    {"prompt": "Spell cat backwards.", "completion": "tac", "source": "d"},
]
CHAT = [
    {"messages": [{"role": "user", "content": "Tell me a fact."}, {"role": "assistant", "content": "Water is wet."}]},
]
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/main/train-*.jsonl
  - split: test
    path: data/main/test.jsonl
- config_name: chat
  data_files:
  - split: train
    path: data/chat/train.jsonl
---
# a data set in the hub's layout
"""
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data set repository as the hub holds it: two subsets, the default one with a train and a test split."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # datasets' cache, this test's own
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    root = tmp_path / "repo"
    _jsonl(root / "data/main/train-00000.jsonl", ROWS[:3])
    _jsonl(root / "data/main/train-00001.jsonl", ROWS[3:])
    _jsonl(root / "data/main/test.jsonl", ROWS[:1])
    _jsonl(root / "data/chat/train.jsonl", CHAT)
    (root / "README.md").write_text(CARD, encoding="utf-8")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# -- reading -------------------------------------------------------------------------------------------------
def test_hub_layout_folder_reads_splits_and_subsets_with_field_names(repo):
    fields = {"instruction": "prompt", "output": "completion"}
    ds = read(repo, fields=fields)
    assert ds.n_read == 4 and ds.format == "alpaca" and ds.container == "hub"
    assert [ex.instruction for ex in ds.examples] == [r["prompt"] for r in ROWS]
    assert ds.origin.startswith(f"hub-layout folder {repo} (split train")
    assert [ex.response for ex in read(repo, fields=fields, split="test").examples] == [ROWS[0]["completion"]]
    chat = read(repo, subset="chat")
    assert chat.format == "openai" and chat.examples[0].response == "Water is wet."
    # streaming reads the same rows, a batch at a time, and the records come back for writing
    streamed = read(repo, fields=fields, streaming=True, keep_records=False)
    assert streamed.table is None and [e.content_hash for e in streamed.examples] == [
        e.content_hash for e in ds.examples
    ]
    assert list(streamed.records([1, 3])) == [ROWS[1], ROWS[3]]


def test_changed_files_are_read_again(repo):
    assert read(repo, subset="chat").n_read == 1
    _jsonl(repo / "data/chat/train.jsonl", CHAT * 3)  # datasets' own cache of a local folder would keep 1 row
    assert read(repo, subset="chat").n_read == 3


def test_a_local_path_wins_over_a_hub_id_of_the_same_spelling(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "org" / "name" / "train.jsonl", CHAT)  # a folder org/name in the hub's layout
    ds = read("org/name")
    assert ds.n_read == 1 and "the hub id org/name was not read" in ds.origin
    with pytest.raises(OptionError, match="--split apply to a hub data set"):
        read(repo / "data/chat/train.jsonl", split="train")


def test_an_unreachable_hub_id_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    for spec in ("someorg/some-data", "hf://someorg/some-data"):
        r = cli("select", spec, "--method", "longest", "--top", "1", "-o", tmp_path / "o.jsonl", check=False, env=env)
        assert r.returncode == 2, r.stderr
        errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert errors == [
            "error: hub data set someorg/some-data (split train): could not be loaded: "
            "Couldn't reach 'someorg/some-data' on the Hub (OfflineModeIsEnabled)"
        ]
        assert "Traceback" not in r.stderr and not (tmp_path / "o.jsonl").exists()


def test_compare_takes_hub_ids_for_its_data_and_eval(tmp_path):
    env = {**os.environ, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    r = cli("compare", "someorg/pool", "--eval", "someorg/held-out", "--budget", "2", "--methods", "longest",
            "--no-plot", "-o", tmp_path / "cmp", check=False, env=env)  # fmt: skip
    assert r.returncode == 2 and "error: hub data set someorg/pool (split train): could not be loaded" in r.stderr
    assert "no such file" not in r.stderr and "Traceback" not in r.stderr


def test_cannot_tell_the_format_suggests_fields(repo, tmp_path):
    r = cli("select", repo, "--method", "longest", "--top", "1", "-o", tmp_path / "o.jsonl", check=False)
    assert r.returncode == 2
    assert "cannot tell the format from the fields ['completion', 'prompt', 'source']" in r.stderr
    assert "--fields instruction=prompt,output=completion" in r.stderr
    r = cli(
        "select",
        repo,
        "--method",
        "longest",
        "--top",
        "1",
        "-o",
        tmp_path / "o.jsonl",
        "--fields",
        "prompt",
        check=False,
    )
    assert r.returncode == 2 and "expected FIELD=NAME pairs" in r.stderr


# -- the CLI end to end: hub in, trainer format and card out ----------------------------------------------------
def test_select_from_hub_layout_to_openai_with_a_card(repo, tmp_path):
    out = tmp_path / "export" / "picked.jsonl"
    out.parent.mkdir()
    r = cli("select", repo, "--method", "longest", "--top", "2", "-o", out, "--fields",
            "instruction=prompt,output=completion", "--to", "openai", "--card")  # fmt: skip
    assert f"read hub-layout folder {repo} (split train)" in r.stderr
    picked = _lines(out)
    assert picked == [
        {"messages": [{"role": "user", "content": ROWS[i]["prompt"]},
                      {"role": "assistant", "content": ROWS[i]["completion"]}], "source": ROWS[i]["source"]}
        for i in (0, 2)
    ]  # fmt: skip
    text = (out.parent / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "picked.jsonl"}]
    assert "| 4 | 2 | 2 | 0 |" in text and "longest" in text and f"hub-layout folder {repo}" in text
    assert "| output_chars | 2 |" in text and "to: openai" in text
    # the card makes the export folder a hub data set that load_dataset reads (and that a plain upload completes)
    back = read(out.parent)
    assert back.format == "openai" and back.n_read == 2
    # a rerun reads the same content hashes, so the score cache serves every row
    again = cli("select", repo, "--method", "longest", "--top", "2", "-o", out, "--fields",
                "instruction=prompt,output=completion", "--to", "openai", "--card", "--overwrite")  # fmt: skip
    assert "lengths: 0 scored, 4 from cache" in again.stderr and _lines(out) == picked
    # an existing README.md is the user's: refused unless --overwrite
    r = cli("select", repo, "--method", "longest", "--top", "2", "-o", tmp_path / "export" / "again.jsonl",
            "--fields", "instruction=prompt,output=completion", "--card", check=False)  # fmt: skip
    assert r.returncode == 2 and "README.md: already exists" in r.stderr


def test_a_datasets_folder_output_gets_its_card(repo, tmp_path):
    out = tmp_path / "picked"
    cli("select", repo, "--subset", "chat", "--method", "longest", "--top", "1", "-o", out, "--to", "sharegpt")
    assert (out / "README.md").is_file() and "data-*.arrow" in (out / "README.md").read_text()
    assert read(out).examples[0].response == "Water is wet."  # still a datasets folder


def test_recipe_reads_the_hub_with_fields_and_writes_alpaca(repo, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "input": str(repo), "split": "test", "fields": {"instruction": "prompt", "output": "completion"},
        "output": "out.json", "to": "alpaca", "steps": [{"method": "longest", "with": {"top": 1}}],
    }))  # fmt: skip
    cli("run", recipe)
    assert json.loads((tmp_path / "out.json").read_text()) == [
        {"instruction": ROWS[0]["prompt"], "input": "", "output": ROWS[0]["completion"], "source": "a"}
    ]


def test_run_takes_a_hub_id_for_its_input_and_the_shared_options(repo, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"input": "x.jsonl", "output": "o.jsonl", "steps": [{"method": "longest", "with": {"top": 1}}]})
    )
    r = cli("run", recipe, "--input", "someorg/some-data", "--subset", "main", check=False)
    assert r.returncode == 2 and "error: hub data set someorg/some-data (split train, subset main)" in r.stderr
    r = cli("run", recipe, "--input", str(repo), "--subset", "chat", "--to", "sharegpt", "--private", check=False)
    assert r.returncode == 2 and "--private is an option of --push-to-hub" in r.stderr
    cli("run", recipe, "--input", str(repo), "--subset", "chat", "--to", "sharegpt")
    assert _lines(tmp_path / "o.jsonl")[0]["conversations"][1] == {"from": "gpt", "value": "Water is wet."}


def test_push_to_hub_is_refused_before_any_work_without_a_token(repo, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env |= {"HF_HOME": str(tmp_path / "empty-hf-home"), **OFFLINE}
    out = tmp_path / "o.jsonl"
    r = cli("select", repo, "--subset", "chat", "--method", "longest", "--top", "1", "-o", out,
            "--push-to-hub", "me/picked", "--private", check=False, env=env)  # fmt: skip
    assert r.returncode == 2 and "error: --push-to-hub me/picked: no Hugging Face token" in r.stderr
    assert not out.exists() and "read " not in r.stderr  # nothing read, nothing written


# -- conversion, each direction ---------------------------------------------------------------------------------
SYSTEM_CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "And 2+2?"},
    {"role": "assistant", "content": "4."},
]
SHAREGPT = {"system": "Be brief.", "conversations": [
    {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
    {"from": "human", "value": "And 2+2?"}, {"from": "gpt", "value": "4."}]}  # fmt: skip
ALPACA = {"system": "Be brief.", "instruction": "And 2+2?", "input": "", "output": "4.", "history": [["Hi", "Hello."]]}


def test_each_direction_keeps_system_prompts_turns_and_other_fields():
    openai = {"id": 7, "messages": SYSTEM_CHAT, "tag": "x"}
    assert convert(openai, "openai", "sharegpt") == {**SHAREGPT, "id": 7, "tag": "x"}
    assert convert(openai, "openai", "alpaca") == {**ALPACA, "id": 7, "tag": "x"}
    assert convert({**SHAREGPT, "id": 7}, "sharegpt", "openai") == {"messages": SYSTEM_CHAT, "id": 7}
    assert convert({**SHAREGPT, "id": 7}, "sharegpt", "alpaca") == {**ALPACA, "id": 7}
    assert convert({**ALPACA, "id": 7}, "alpaca", "openai") == {"messages": SYSTEM_CHAT, "id": 7}
    assert convert({**ALPACA, "id": 7}, "alpaca", "sharegpt") == {**SHAREGPT, "id": 7}
    # an Alpaca input goes after the instruction; Dolly's names and --fields names are the format's own fields
    dolly = {"instruction": "Sum up.", "context": "A long text.", "response": "Short.", "category": "summarization"}
    assert convert(dolly, "alpaca", "openai") == {"messages": [
        {"role": "user", "content": "Sum up.\n\nA long text."}, {"role": "assistant", "content": "Short."}],
        "category": "summarization"}  # fmt: skip
    mapped = convert(ROWS[0], "alpaca", "sharegpt", {"instruction": "prompt", "output": "completion"})
    assert mapped == {"conversations": [{"from": "human", "value": ROWS[0]["prompt"]},
                                        {"from": "gpt", "value": ROWS[0]["completion"]}], "source": "a"}  # fmt: skip


def test_round_trips():
    for fmt, record in (("openai", {"messages": SYSTEM_CHAT}), ("sharegpt", SHAREGPT), ("alpaca", ALPACA)):
        for other in ("openai", "sharegpt", "alpaca"):
            assert convert(convert(record, fmt, other), other, fmt) == record, (fmt, other)


def test_a_conversation_alpaca_cannot_hold_is_refused_before_any_work(tmp_path):
    data = tmp_path / "chat.jsonl"
    _jsonl(data, [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                {"role": "assistant", "content": "c"}]}])  # fmt: skip
    r = cli("select", data, "--method", "longest", "--top", "1", "-o", tmp_path / "o.jsonl", "--to", "alpaca",
            check=False)  # fmt: skip
    assert r.returncode == 2 and "line 1, row 0: cannot be written --to alpaca: turns 0 and 1" in r.stderr
    assert "lengths" not in r.stderr  # refused before scoring
    cli("select", data, "--method", "longest", "--top", "1", "-o", tmp_path / "o.jsonl", "--to", "sharegpt")
    assert [t["from"] for t in _lines(tmp_path / "o.jsonl")[0]["conversations"]] == ["human", "human", "gpt"]


# -- a trainer takes it -----------------------------------------------------------------------------------------
def test_trl_sft_trainer_takes_an_openai_export(repo, tmp_path, tiny_llama):
    """The export's `messages` are what TRL's SFTTrainer trains on: the folder is loaded as `trl sft
    --dataset_name FOLDER` loads it (`load_dataset`, through the card's configs), then one step on the tiny Llama."""
    datasets = pytest.importorskip("datasets")
    trl = pytest.importorskip("trl")
    out = tmp_path / "picked" / "alpaca.jsonl"
    cli("select", repo, "--method", "longest", "--top", "3", "-o", out, "--fields",
        "instruction=prompt,output=completion", "--to", "openai", "--card", "-q")  # fmt: skip
    train = datasets.load_dataset(str(out.parent), split="train")
    assert train.num_rows == 3 and train.column_names == ["messages", "source"]
    config = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2,
                           max_length=64, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                           dataloader_num_workers=0, gradient_checkpointing=False)  # fmt: skip
    trainer = trl.SFTTrainer(model=str(tiny_llama), args=config, train_dataset=train)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
