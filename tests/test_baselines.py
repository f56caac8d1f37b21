"""The baselines every selection is compared against: `longest` (Zhao et al., ICML 2024) and `random`,
each against a plain reference on real data."""

from __future__ import annotations

import numpy as np
import pytest

from instructsift import recipe as recipes
from instructsift.pipeline import run


def picked_rows(path, method: str, options: dict, tmp_path) -> list[int]:
    recipe = recipes.from_method(method, options, input=str(path), cache_dir=str(tmp_path / "cache"))
    return run(recipe, progress=False, log=lambda _: None).picked.rows


def test_longest_by_characters_is_the_plain_sort(shared_data, tmp_path):
    import json

    path = shared_data / "alpaca" / "alpaca_random_9k.json"
    records = json.loads(path.read_text())[:600]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    lengths = [len(r["output"]) for r in records]
    want = sorted(sorted(range(len(records)), key=lambda i: (-lengths[i], i))[:60])  # ties: the earlier row
    assert picked_rows(data, "longest", {"ratio": 0.1}, tmp_path) == want
    assert picked_rows(data, "longest", {"top": 60}, tmp_path) == want


def test_longest_in_tokens_sums_the_answers_of_a_conversation(shared_data, tmp_path):
    """Multi-turn: each answer tokenized alone (no special tokens), one at a time, and summed."""
    import json

    from transformers import AutoTokenizer

    from instructsift.models import resolve

    records = json.loads((shared_data / "multiturn" / "sharegpt_dummy_500.json").read_text())[:120]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    ds = __import__("instructsift").read(data)
    answers = [
        sum(len(tok(m.content, add_special_tokens=False).input_ids) for m in ex.messages if m.role == "assistant")
        for ex in ds.examples
    ]
    assert sum(1 for ex in ds.examples if sum(m.role == "assistant" for m in ex.messages) > 1) >= 10
    want = sorted(sorted(range(len(answers)), key=lambda i: (-answers[i], i))[:15])
    assert picked_rows(data, "longest", {"top": 15, "model": "embedded"}, tmp_path) == want
    by_chars = picked_rows(data, "longest", {"top": 15}, tmp_path)
    assert by_chars != want  # characters and tokens rank these conversations differently


def test_random_is_numpys_seeded_draw(tmp_path):
    from instructsift.selection.sample import random_subset

    path = tmp_path / "pool.jsonl"
    path.write_text("".join(f'{{"instruction": "question {i}", "output": "answer {i}"}}\n' for i in range(200)))
    first = picked_rows(path, "random", {"top": 30, "seed": 7}, tmp_path)
    want = sorted(np.random.default_rng(7).permutation(200)[:30].tolist())
    assert first == want == random_subset(200, 30, 7)  # the same draw as compare's random arm of seed 7
    assert picked_rows(path, "random", {"top": 30, "seed": 7}, tmp_path) == first
    assert picked_rows(path, "random", {"top": 30, "seed": 8}, tmp_path) != first
    assert len(picked_rows(path, "random", {"ratio": 0.05}, tmp_path)) == 10


def test_random_draws_among_the_rows_still_kept():
    import pyarrow as pa

    from instructsift.selection import RandomSample, Selection

    sel = Selection.all(10)
    sel.drop([0, 1, 2], "earlier step")
    RandomSample(k=4, seed=1).apply(pa.table({"x": list(range(10))}), sel)
    kept = sel.kept.tolist()
    assert len(kept) == 4 and not set(kept) & {0, 1, 2}
    assert kept == [3 + i for i in sorted(np.random.default_rng(1).permutation(7)[:4].tolist())]
    assert sel.codes.count("not among 4 drawn at random (seed 1)") == 3


def test_a_method_refuses_the_other_baselines_option(tmp_path):
    from instructsift.errors import UsageError

    with pytest.raises(UsageError, match="does not take 'model'"):
        recipes.from_method("random", {"top": 3, "model": "embedded"}, input="x.json")
    with pytest.raises(UsageError, match="does not take 'seed'"):
        recipes.from_method("longest", {"top": 3, "seed": 1}, input="x.json")
