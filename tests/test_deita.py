"""DEITA: the scorer against a plain one-prompt-at-a-time forward pass, multi-turn sums, missing scores
with reasons, and the method end to end through a recipe (embedded SmolLM2, float32, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tolerances import REL, expected_score, ratio

from instructsift.data import Example, Message, read
from instructsift.scoring.deita import Deita
from instructsift.scoring.deita_prompts import COMPLEXITY_SCORER, QUALITY_SCORER

# The reference scorers' prompt texts (hkust-nlp/deita, src/deita/selection/scorer/llama_scorer.py), pinned
# here character for character: the released scorer models were trained on exactly these.
COMPLEXITY = (
    "You are a helpful assistant. Please identify the complexity score of the following user query. \n"
    "##Query: {instruction}  \n##Complexity: "
)
QUALITY = (
    "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
    "Question. \n #Question#:\n{instruction}\n#Response#:\n{output} \n##Quality: "
)


@pytest.fixture(scope="module")
def short_records(shared_data) -> list[dict]:
    """Real Alpaca rows with short instructions and answers (the first ones with an input mixed in)."""
    records = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))
    return [r for r in records if len(r["output"]) < 120 and len(r["instruction"]) + len(r["input"]) < 120]


@pytest.fixture(scope="module")
def alpaca_rows(short_records, tmp_path_factory) -> list[Example]:
    picked = [r for r in short_records if r["input"]][:1] + [r for r in short_records if not r["input"]][:2]
    path = tmp_path_factory.mktemp("deita") / "alpaca3.json"
    path.write_text(json.dumps(picked), encoding="utf-8")
    return read(path).examples


def reference(lm, text: str) -> tuple[float, float, float]:
    """(expected score, mass on the six digits, DEITA's own formula: softmax over the six logits x 1..6)
    from one plain forward pass over one prompt."""
    import torch

    tok = lm.tokenizer
    digits = [tok.convert_tokens_to_ids(str(s)) for s in range(1, 7)]
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([tok(text).input_ids]), logits_to_keep=1).logits[0, -1].double()
    p = torch.softmax(logits, -1)[digits]
    mass = float(p.sum())
    expected = float((p * torch.arange(1, 7)).sum()) / mass
    deita = float((torch.softmax(logits[digits], -1) * torch.arange(1, 7)).sum())
    return expected, mass, deita


def scores(scorer: Deita, examples: list[Example]) -> list[dict]:
    return [row for part in scorer.score(examples) for _, row in part]


def test_scores_match_one_prompt_at_a_time(lm32, alpaca_rows) -> None:
    scorer = Deita(complexity_model=lm32, quality_model=lm32, min_mass=0.0, batch_tokens=512)
    rows = scores(scorer, alpaca_rows)
    assert any(ex.messages[0].context for ex in alpaca_rows)
    for ex, row in zip(alpaca_rows, rows, strict=True):
        user, answer = ex.messages
        instruction = f"{user.content}\n\n{user.context}" if user.context else user.content
        c, c_mass, c_deita = reference(lm32, COMPLEXITY.format(instruction=instruction))
        q, q_mass, q_deita = reference(lm32, QUALITY.format(instruction=instruction, output=answer.content))
        assert c == pytest.approx(c_deita, abs=1e-9) and q == pytest.approx(q_deita, abs=1e-9)
        # expected scores on 1..6 (their product on 1..36), batched vs one prompt at a time: tests/tolerances.py
        assert row["deita_complexity"] == expected_score(c, 6)
        assert row["deita_quality"] == expected_score(q, 6)
        assert row["deita_score"] == expected_score(c * q, 36)
        assert row["deita_complexity_mass"] == ratio(c_mass)
        assert row["deita_quality_mass"] == ratio(q_mass)
        assert row["deita_turns"] == 1 and row["deita_truncated"] is False and row["deita_reason"] is None
        assert 1 <= row["deita_complexity"] <= 6 and 1 <= row["deita_quality"] <= 6


def test_multi_turn_scores_each_turn_and_sums(lm32, shared_data) -> None:
    ds = read(shared_data / "multiturn" / "sharegpt_dummy_500.json")
    ex = next(e for e in ds.examples if [m.role for m in e.messages] == ["user", "assistant"] * 2)
    singles = [Example(f"t{t}", ex.messages[2 * t : 2 * t + 2], t) for t in range(2)]
    scorer = Deita(complexity_model=lm32, quality_model=lm32, min_mass=0.0)
    whole, *parts = scores(scorer, [ex, *singles])
    assert whole["deita_turns"] == 2 and whole["deita_reason"] is None
    # two turns: sums of two expected scores on 1..6 (of two products on 1..36), in other batches than the parts
    assert whole["deita_complexity"] == expected_score(sum(p["deita_complexity"] for p in parts), 2 * 6)
    assert whole["deita_quality"] == expected_score(sum(p["deita_quality"] for p in parts), 2 * 6)
    assert whole["deita_score"] == expected_score(sum(p["deita_score"] for p in parts), 2 * 36)
    # DEITA sums complexity x quality per turn, which is not (sum of complexity) x (sum of quality): they differ
    # by c1 q2 + c2 q1 >= 2, far beyond any tolerance
    assert whole["deita_score"] != pytest.approx(whole["deita_complexity"] * whole["deita_quality"], abs=REL * 72)
    # each turn is scored on its own (no earlier turns in its prompt): the sums above equal the turns alone


def test_low_mass_and_unscorable_rows_are_missing_with_a_reason(lm32, alpaca_rows) -> None:
    unanswered = Example("q", (Message("user", "What is DEITA?"),), 9)
    strict = Deita(complexity_model=lm32, quality_model=lm32, min_mass=0.99)
    low, none = scores(strict, [alpaca_rows[1], unanswered])
    assert low["deita_score"] is None and low["deita_complexity"] is None and low["deita_quality"] is None
    assert 0 < low["deita_complexity_mass"] < 0.99 and 0 < low["deita_quality_mass"] < 0.99
    assert low["deita_reason"] == (
        f"complexity: score-token mass {low['deita_complexity_mass']:.3g} < min_mass 0.99; "
        f"quality: score-token mass {low['deita_quality_mass']:.3g} < min_mass 0.99"
    )
    assert none["deita_score"] is None and none["deita_turns"] == 0
    assert none["deita_reason"] == "no answered (instruction, response) turn to score"
    with pytest.raises(ValueError, match="min_mass"):
        Deita(min_mass=1.5)


def test_a_long_prompt_is_cut_to_max_length(lm32, alpaca_rows) -> None:
    ex = alpaca_rows[0]
    long = Example("long", (ex.messages[0], Message("assistant", ex.messages[1].content * 30)), 0)
    scorer = Deita(complexity_model=lm32, quality_model=lm32, min_mass=0.0, max_length=96)
    _, q = scorer.load()
    from instructsift.scoring.deita_prompts import quality_prompt

    prompt = scorer.encode(q, quality_prompt, [ex.messages[0].text, long.messages[1].content])
    assert prompt.truncated and 64 <= len(prompt.ids) <= 96
    (row,) = scores(scorer, [long])
    assert row["deita_truncated"] is True and row["deita_quality"] is not None and row["deita_reason"] is None


TWINS = (0, 8, 11)


def test_method_end_to_end_through_a_recipe(short_records, tmp_path) -> None:
    import numpy as np

    import instructsift.pipeline as pipeline
    import instructsift.recipe as recipes

    # 27 real rows and near-copies of three of them (a double space in the answer), rated high by the model
    twins = [{**short_records[i], "output": short_records[i]["output"].replace(" ", "  ", 1)} for i in TWINS]
    records = short_records[:27] + twins
    data = tmp_path / "alpaca30.json"
    data.write_text(json.dumps(records), encoding="utf-8")
    options = {"top": 10, "complexity_model": "embedded", "quality_model": "embedded", "min_mass": 0.3, "device": "cpu"}
    out, dropped = tmp_path / "kept.json", tmp_path / "dropped.jsonl"
    recipe = recipes.from_method("deita", options, input=data, output=out, dropped=dropped, cache_dir=tmp_path / "c")
    assert [(s.kind, s.name) for s in recipe.steps] == [
        ("score", "deita"),
        ("score", "embed"),
        ("select", "diverse_top"),
    ]
    result = pipeline.run(recipe, progress=False, log=lambda _m: None)

    kept = json.loads(out.read_text())
    gone = [json.loads(line) for line in dropped.read_text().splitlines()]
    assert len(kept) == 10 and len(kept) + len(gone) == len(records) == 30
    kept_rows = sorted(records.index(r) for r in kept)
    assert sorted(kept_rows + [g["row"] for g in gone]) == list(range(30))
    table = result.table.to_pylist()
    # rows the scorer could not rate are dropped with its reason, never scored 3.0
    unrated = [g for g in gone if g["code"] == "not scored"]
    assert unrated and all("< min_mass 0.3" in g["detail"] for g in unrated)
    assert all(table[g["row"]]["deita_score"] is None for g in unrated)
    # the walk is by deita_score, highest first: nothing it did not reach scores above what it kept
    floor = min(table[i]["deita_score"] for i in kept_rows)
    unreached = [g for g in gone if g["code"].startswith("not reached")]
    assert all(table[g["row"]]["deita_score"] <= floor for g in unreached)
    similar = [g for g in gone if g["code"].startswith("within cosine 0.9")]
    assert similar and len(unrated) + len(unreached) + len(similar) == 20
    # no two kept rows are within cosine 0.9 of each other; of each pair of twins at most one is kept
    vectors = np.array([table[i]["embedding"] for i in kept_rows])
    cosine = vectors @ vectors.T - 2 * np.eye(len(kept_rows))
    assert cosine.max() <= 0.9
    assert all(not {i, 27 + j} <= set(kept_rows) for j, i in enumerate(TWINS))
    assert all(g["step"] == "diverse_top" for g in gone)


def test_example_recipe_is_valid() -> None:
    import instructsift.recipe as recipes

    path = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "deita.yaml"
    recipe = recipes.load(path)
    assert [s.name for s in recipe.steps] == ["deita", "embed", "diverse_top"]
    assert recipe.path("input").resolve() == path.parent.parent.resolve() / "sample_alpaca.json"


def test_method_options_are_checked() -> None:
    from instructsift.errors import UsageError
    from instructsift.methods import get_method

    deita = get_method("deita")
    with pytest.raises(UsageError, match="needs exactly one of ratio= or top="):
        deita.expand({})
    with pytest.raises(UsageError, match="embeds with encoder=.lm."):
        deita.expand({"top": 5, "model": "embedded"})
    score, embed, select = deita.expand({"ratio": 0.1, "encoder": "lm", "model": "embedded", "min_mass": 0.2})
    assert score["with"] == {"complexity_model": COMPLEXITY_SCORER, "quality_model": QUALITY_SCORER, "min_mass": 0.2}
    assert embed["with"] == {"text": "whole", "encoder": "lm:embedded"}
    assert select == {
        "select": "diverse_top",
        "with": {"score": "deita_score", "column": "embedding", "threshold": 0.9, "ratio": 0.1, "of": "all"},
    }
