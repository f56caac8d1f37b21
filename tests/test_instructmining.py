"""InstructMining: each indicator on real rows against a value computed by hand, KNN against brute force,
the rule's fit on synthetic subsets (exact and noisy), save/load, the selector and the method end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instructsift.data import read
from instructsift.engine.local import score
from instructsift.selection.instructmining import InstructMiningRule, knn_distance, paper_rule

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"


@pytest.fixture(scope="module")
def alpaca_rows(shared_data, tmp_path_factory):
    """Six real Alpaca rows (two with an input)."""
    records = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))
    picked = [r for r in records if r["input"]][:2] + [r for r in records if not r["input"]][:4]
    path = tmp_path_factory.mktemp("im") / "alpaca6.json"
    path.write_text(json.dumps(picked), encoding="utf-8")
    return read(path), picked


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory) -> Path:
    """A tiny random Llama sequence classifier (one label) with the embedded SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from instructsift.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# -- indicators --------------------------------------------------------------------------------------------
def test_lengths_on_real_rows(alpaca_rows, tmp_path):
    from transformers import AutoTokenizer

    from instructsift.models import resolve
    from instructsift.scoring.indicators import Lengths

    dataset, records = alpaca_rows
    table = score(dataset, [Lengths()], cache_dir=tmp_path, progress=False).to_pylist()
    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    for rec, row in zip(records, table, strict=True):
        prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec["input"] else "")
        assert row["input_chars"] == len(prompt)
        assert row["output_chars"] == len(rec["output"])
        assert row["input_tokens"] == len(tok.encode(prompt, add_special_tokens=False))
        assert row["output_tokens"] == len(tok.encode(rec["output"], add_special_tokens=False))
    # one row pinned by hand: "Explain why the sky is blue." -> "Because it is."
    one = score(read(SAMPLE), [Lengths()], cache_dir=tmp_path, progress=False).to_pylist()[1]
    assert (one["input_chars"], one["output_chars"], one["output_tokens"]) == (28, 14, 4)


def _mtld_by_hand(words: list[str], threshold: float = 0.72) -> float:
    """McCarthy & Jarvis's MTLD: factors counted where the running type-token ratio falls to the threshold,
    a partial factor for the rest, both directions averaged."""

    def one_way(ws: list[str]) -> float:
        factors, types, count = 0.0, set(), 0
        for w in ws:
            count += 1
            types.add(w)
            if len(types) / count <= threshold:
                factors += 1
                types, count = set(), 0
        if count:
            factors += (1 - len(types) / count) / (1 - threshold)
        return len(ws) / factors if factors else float(len(ws))

    return (one_way(words) + one_way(words[::-1])) / 2


def test_mtld_on_real_rows(alpaca_rows, tmp_path):
    from lexicalrichness import LexicalRichness

    from instructsift.scoring.indicators import MTLD

    dataset, records = alpaca_rows
    table = score(dataset, [MTLD()], cache_dir=tmp_path, progress=False).to_pylist()
    for rec, row in zip(records, table, strict=True):
        words = LexicalRichness(rec["output"]).wordlist
        assert row["mtld"] == pytest.approx(_mtld_by_hand(words), rel=1e-9), rec["output"][:60]
        assert row["mtld_reason"] is None


def test_mtld_without_words_is_missing_with_reason(tmp_path):
    from instructsift.data import Example, Message
    from instructsift.scoring.indicators import MTLD

    ex = Example("a", (Message("user", "Say nothing."), Message("assistant", "...")), 0)
    (_, row), *_ = next(MTLD().score([ex], frozenset()))
    assert row["mtld"] is None and row["mtld_reason"] == "the response has no words"


def test_reward_against_one_plain_forward_pass(alpaca_rows, tiny_reward_model, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from instructsift.scoring.reward import Reward

    dataset, records = alpaca_rows
    table = score(
        dataset, [Reward(str(tiny_reward_model), dtype="float32", batch_size=4)], cache_dir=tmp_path, progress=False
    ).to_pylist()
    tok = AutoTokenizer.from_pretrained(tiny_reward_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model, dtype=torch.float32).eval()
    for rec, row in zip(records, table, strict=True):
        prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec["input"] else "")
        with torch.no_grad():
            want = model(input_ids=torch.tensor([tok(prompt, rec["output"]).input_ids])).logits[0, 0].item()
        assert row["reward"] == pytest.approx(want, abs=1e-5)
        assert row["reward_reason"] is None and row["reward_truncated"] is False


def test_reward_model_needs_one_label(tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from instructsift.data.errors import OptionError
    from instructsift.models import resolve
    from instructsift.scoring.reward import Reward

    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, num_labels=3)  # fmt: skip
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "m3")
    tok.save_pretrained(tmp_path / "m3")
    with pytest.raises(OptionError, match="one output label"):
        Reward(str(tmp_path / "m3")).load()


# -- KNN ---------------------------------------------------------------------------------------------------
def test_knn_distance_equals_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 7))
    X[5] = X[3] * 2.0  # the same direction: distance 0 after normalising
    got = knn_distance(X, k=6)
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    want = []
    for i in range(len(Z)):
        d = sorted(np.linalg.norm(Z[i] - Z[j]) for j in range(len(Z)) if j != i)
        want.append(np.mean(d[:6]))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[3] < got[0]  # its twin is one of its neighbours, at distance 0


def test_knn_needs_more_rows_than_k():
    from instructsift.data.errors import OptionError

    with pytest.raises(OptionError, match="more than 6 rows"):
        knn_distance(np.eye(6), k=6)


# -- the rule ----------------------------------------------------------------------------------------------
def _synthetic(n: int = 40, noise: float = 0.0, seed: int = 1):
    rng = np.random.default_rng(seed)
    X = {"reward": rng.normal(0, 1, n), "output_tokens": rng.uniform(20, 600, n), "knn6": rng.uniform(0.6, 1.2, n)}
    true = {"reward": -0.15, "output_tokens": 8e-5, "knn6": -0.9}
    log_loss = 1.07 + sum(true[k] * X[k] for k in true) + rng.normal(0, noise, n)
    return X, np.exp(log_loss), true


def test_fit_recovers_known_coefficients_exactly():
    X, y, true = _synthetic()
    rule = InstructMiningRule().fit(X, y)
    assert rule.intercept_ == pytest.approx(1.07, abs=1e-9)
    for k, v in true.items():
        assert rule.coef_[k] == pytest.approx(v, abs=1e-9)
    assert rule.rsquared_ == pytest.approx(1.0) and rule.loo_rsquared_ == pytest.approx(1.0)
    assert rule.dropped_ == {}


def test_fit_recovers_coefficients_with_noise():
    X, y, true = _synthetic(n=400, noise=0.02, seed=2)
    rule = InstructMiningRule().fit(X, y)
    for k, v in true.items():
        assert abs(rule.coef_[k] - v) < 4 * rule.bse_[k], (k, rule.coef_[k], rule.bse_[k])
    assert rule.pvalues_["reward"] < 1e-6
    assert 0.9 < rule.loo_rsquared_ <= rule.rsquared_ < 1


def test_loo_rsquared_is_leave_one_out_by_refitting():
    X, y, _ = _synthetic(n=25, noise=0.05, seed=3)
    rule = InstructMiningRule().fit(X, y)
    names = list(X)
    M, t = np.column_stack([X[n] for n in names]), np.log(y)
    preds = []
    for i in range(len(t)):
        mask = np.arange(len(t)) != i
        r = InstructMiningRule(names).fit(M[mask], np.exp(t[mask]))
        preds.append(r.predict(M[i : i + 1])[0])
    loo = 1 - np.sum((t - np.array(preds)) ** 2) / np.sum((t - t.mean()) ** 2)
    assert rule.loo_rsquared_ == pytest.approx(loo, rel=1e-9)


def test_collinear_and_constant_indicators_are_dropped_and_named():
    X, y, _ = _synthetic()
    X["output_chars"] = X["output_tokens"] * 4.5 + 3  # collinear with output_tokens
    X["n_turns"] = np.ones(len(y))
    rule = InstructMiningRule().fit(X, y)
    assert set(rule.indicators_) == {"reward", "output_tokens", "knn6"}
    assert "collinear" in rule.dropped_["output_chars"] and "constant" in rule.dropped_["n_turns"]


def test_fit_refuses_too_few_subsets_and_bad_losses():
    from instructsift.data.errors import OptionError

    X, y, _ = _synthetic(n=4)
    with pytest.raises(OptionError, match="cannot fit"):
        InstructMiningRule().fit(X, y)
    X, y, _ = _synthetic()
    y[0] = 0.0
    with pytest.raises(OptionError, match="> 0"):
        InstructMiningRule().fit(X, y)


def test_save_load_gives_identical_predictions(tmp_path):
    X, y, _ = _synthetic(n=30, noise=0.05)
    rule = InstructMiningRule().fit(X, y)
    rule.save(tmp_path / "rule.json")
    back = InstructMiningRule.load(tmp_path / "rule.json")
    M = np.random.default_rng(5).normal(size=(50, 3))
    np.testing.assert_array_equal(rule.predict(M), back.predict(M))
    assert back.loo_rsquared_ == rule.loo_rsquared_ and back.pvalues_ == rule.pvalues_
    json.loads((tmp_path / "rule.json").read_text())  # strict JSON (no NaN)


def test_paper_rule():
    rule = paper_rule()
    assert rule.intercept_ == 1.0694
    assert rule.coef_ == {"reward": -0.1498, "output_tokens": 8.257e-5, "knn6": -0.9350}
    assert rule.predict({"reward": [1.0], "output_tokens": [100], "knn6": [1.0]})[0] == pytest.approx(
        1.0694 - 0.1498 + 8.257e-3 - 0.9350
    )
    assert "only with the paper's indicators" in rule.note_


# -- the selector and the method ---------------------------------------------------------------------------
def test_method_selects_by_the_rule_end_to_end(tiny_reward_model, tmp_path):
    """`select --method instructmining --rule R --top 5` through the CLI: the kept rows are the 5 lowest
    predictions, which equal the rule applied to the written indicator columns by hand."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from instructsift.cli import app

    rule = InstructMiningRule().fit(*_synthetic()[:2])
    rule.save(tmp_path / "fitted.json")
    out, scores = tmp_path / "picked.json", tmp_path / "scores.parquet"
    args = ["select", str(SAMPLE), "--method", "instructmining", "--rule", str(tmp_path / "fitted.json"),
            "--reward-model", str(tiny_reward_model), "--top", "5", "-o", str(out), "--save-scores", str(scores),
            "--dtype", "float32"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pq.read_table(scores).to_pylist()
    pred = [r["instructmining"] for r in table]
    for r in table:
        by_hand = rule.intercept_ + sum(rule.coef_[k] * r[k] for k in ("reward", "output_tokens", "knn6"))
        assert r["instructmining"] == pytest.approx(by_hand, abs=1e-12)
    best = sorted(range(len(pred)), key=lambda i: (pred[i], i))[:5]
    records = json.loads(SAMPLE.read_text())
    assert json.loads(out.read_text()) == [records[i] for i in sorted(best)]


def test_paper_rule_refuses_the_offline_stand_in():
    from instructsift.errors import UsageError
    from instructsift.recipe import from_method

    with pytest.raises(UsageError, match="reward-model"):
        from_method("instructmining", {"rule": "paper", "reward_model": "judge", "top": 3}, input=str(SAMPLE))
    with pytest.raises(UsageError, match="needs --rule"):
        from_method("instructmining", {"top": 3}, input=str(SAMPLE))
