"""The experiment runner and `instructsift compare`, on a tiny randomly initialised model and real rows.

The tiny model is a 2-layer, 32-wide Llama with the embedded SmolLM2 tokenizer (as in test_train), so a
trial (fine-tune a few steps, evaluate a few rows) takes about a second on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ALPACA = "alpaca/alpaca_random_9k.json"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from instructsift.models.loader import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rows(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 short real Alpaca rows to select from and 8 others held out, as files."""
    data = json.loads((shared_data / ALPACA).read_text())
    short = sorted(data[:300], key=lambda r: len(r["instruction"]) + len(r["input"]) + len(r["output"]))
    folder = tmp_path_factory.mktemp("rows")
    (folder / "pool.json").write_text(json.dumps(short[:24]))
    (folder / "held_out.json").write_text(json.dumps(short[24:32]))
    return folder / "pool.json", folder / "held_out.json"


def _config(**kw):
    from instructsift.train.finetune import FinetuneConfig

    base = dict(lora=False, lr=5e-3, epochs=1, batch_size=4, max_length=96, checkpoint_steps=1, dtype="float32")
    return FinetuneConfig(**{**base, **kw})


def _runner(rows, tiny_model: Path, cache: Path, **kw):
    from instructsift.data import read
    from instructsift.train.runner import ExperimentRunner

    pool, held = rows
    return ExperimentRunner(
        read(pool), read(held), str(tiny_model), _config(), eval_dtype="float32", cache_dir=cache, progress=False, **kw
    )


class Stop(Exception):
    pass


def test_runner_caches_and_a_killed_comparison_resumes(rows, tiny_model: Path, tmp_path: Path) -> None:
    """Killed in the middle of the second trial's fine-tuning: the rerun reads the first back, resumes the
    second from its checkpoint and runs the third; a third run trains nothing and gives the same losses."""
    from transformers import TrainerCallback

    subsets = {"a": [0, 1, 2, 3, 4, 5, 6, 7], "b": list(range(8, 16)), "c": list(range(16, 24))}
    seen: list[str] = []

    class KillInSecond(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if len(seen) == 1 and state.global_step == 2:
                raise Stop

    first = _runner(rows, tiny_model, tmp_path / "cache", callbacks=[KillInSecond()])
    with pytest.raises(Stop):
        first.run(subsets, on_trial=lambda t: seen.append(t.name))
    assert seen == ["a"] and len(first.trained) == 1
    ckpts = list((tmp_path / "cache" / "experiments").glob("*/.model.checkpoints/checkpoint-1"))
    assert len(ckpts) == 1  # the interrupted trial left its checkpoint

    second = _runner(rows, tiny_model, tmp_path / "cache")
    trials = second.run(subsets)
    assert [t.name for t in trials] == ["a", "b", "c"]
    assert [t.cached for t in trials] == [True, False, False]
    assert len(second.trained) == 2  # b (resumed) and c, not a
    assert all(t.eval_loss > 0 and t.n == 8 and t.tokens > 0 for t in trials)
    assert not list((tmp_path / "cache" / "experiments").glob("*/model"))  # tuned models deleted once evaluated

    third = _runner(rows, tiny_model, tmp_path / "cache")
    again = third.run({**subsets, "a again": list(reversed(subsets["a"]))})
    assert third.trained == [] and all(t.cached for t in again)
    assert [t.eval_loss for t in again] == [t.eval_loss for t in trials] + [trials[0].eval_loss]
    # the same settings on another subset are another trial; other settings on the same subset too
    assert third.key([0, 1]) != third.key([0, 2])
    other = _runner(rows, tiny_model, tmp_path / "cache")
    other.config = _config(lr=1e-3)
    assert other.key(subsets["a"]) != third.key(subsets["a"])


def test_loss_function_and_bad_subsets(rows, tiny_model: Path, tmp_path: Path) -> None:
    from instructsift.data.errors import OptionError

    runner = _runner(rows, tiny_model, tmp_path / "cache")
    loss = runner([3, 1, 2])
    assert loss == runner.loss([1, 2, 3]) and len(runner.trained) == 1
    for bad, why in (([], "empty"), ([0, 24], "outside"), ([1, 1], "more than once")):
        with pytest.raises(OptionError, match=why):
            runner.loss(bad)
