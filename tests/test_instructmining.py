"""InstructMining: each indicator on real rows against a value computed by hand, KNN against brute force,
the rule's fit on synthetic subsets (exact and noisy), save/load, the selector and the method end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import cli
from tolerances import output, ratio

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


def test_reward_against_one_plain_forward_pass(alpaca_rows, tiny_reward, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from instructsift.scoring.reward import Reward

    dataset, records = alpaca_rows
    table = score(
        dataset, [Reward(str(tiny_reward), dtype="float32", batch_size=4)], cache_dir=tmp_path, progress=False
    ).to_pylist()
    tok = AutoTokenizer.from_pretrained(tiny_reward)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward, dtype=torch.float32).eval()
    for rec, row in zip(records, table, strict=True):
        prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec["input"] else "")
        with torch.no_grad():
            want = model(input_ids=torch.tensor([tok(prompt, rec["output"]).input_ids])).logits[0, 0].item()
        assert row["reward"] == output(want)  # batched and padded vs alone: tests/tolerances.py
        assert row["reward_reason"] is None and row["reward_truncated"] is False


def test_openassistant_reward_layout_loads_and_scores_the_last_token(alpaca_rows, tmp_path):
    """OpenAssistant's Pythia reward models (the paper's) are saved as `gpt_neox_reward_model` /
    `GPTNeoXRewardModel`, a class transformers does not have. A tiny random model written in that layout by
    hand (config.json and safetensors, as the Open-Assistant trainer saves them) loads through the adapter,
    and its reward equals the out_proj of the last token's hidden state of the GPT-NeoX body, computed here
    on the oasst prompt format."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, GPTNeoXConfig, GPTNeoXModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from instructsift.models import resolve
    from instructsift.scoring.reward import OASST, Reward

    assert "gpt_neox_reward_model" not in CONFIG_MAPPING_NAMES  # not a transformers model type
    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    shape = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=2048)  # fmt: skip
    torch.manual_seed(0)
    body, head = GPTNeoXModel(GPTNeoXConfig(**shape)).eval(), torch.nn.Linear(16, 1)
    folder = tmp_path / "oasst-rm"
    folder.mkdir()
    weights = {f"gpt_neox.{k}": v.contiguous() for k, v in body.state_dict().items()}
    weights |= {f"out_proj.{k}": v.contiguous() for k, v in head.state_dict().items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    config = {**shape, "model_type": "gpt_neox_reward_model", "architectures": ["GPTNeoXRewardModel"],
              "pooling": "last", "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    tok.save_pretrained(folder)

    dataset, records = alpaca_rows
    scorer = Reward(str(folder), format="oasst", dtype="float32", batch_size=4)
    table = score(dataset, [scorer], cache_dir=tmp_path, progress=False).to_pylist()
    for rec, row in zip(records, table, strict=True):
        prompt = rec["instruction"] + (f"\n\n{rec['input']}" if rec["input"] else "")
        ids = torch.tensor([tok(OASST.format(prompt=prompt, response=rec["output"])).input_ids])
        with torch.no_grad():
            want = head(body(ids).last_hidden_state[0, -1]).item()
        assert row["reward"] == output(want) and row["reward_reason"] is None
    assert len({row["reward"] for row in table}) == len(table)


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


def test_paper_rule_on_hand_made_rows(tmp_path):
    """`--rule paper` through the selector on hand-made rows, against the published formula worked by hand:
    log L = 1.0694 - 0.1498 Rew + 8.257e-5 Len - 0.9350 Knn6. The 7 embeddings are scaled axes (c_i e_i):
    after L2-normalising, every pair is sqrt(2) apart, so each row's Knn6 is sqrt(2) whatever its scale."""
    import pyarrow as pa

    from instructsift.errors import UsageError
    from instructsift.recipe import from_method
    from instructsift.selection import Selection
    from instructsift.selection.instructmining import InstructMiningSelect

    reward = [2.5, -1.0, 0.0, 4.0, None, 1.0, -3.0]
    tokens = [240, 12, 800, 5000, 100, 0, 64]
    emb = np.diag([0.5, 3.0, 1.0, 7.0, 2.0, 0.1, 1.5]).astype(np.float32)
    table = pa.table({"row": range(7), "id": [str(i) for i in range(7)], "reward": reward, "output_tokens": tokens,
                      "embedding": pa.array(emb.tolist(), pa.list_(pa.float32(), 7))})  # fmt: skip
    select, selection = InstructMiningSelect(rule="paper", k=3), Selection.all(7)
    got = select.columns(table, selection)
    knn = 2**0.5
    by_hand = [None if r is None else 1.0694 - 0.1498 * r + 8.257e-5 * n - 0.9350 * knn
               for r, n in zip(reward, tokens, strict=True)]  # fmt: skip
    assert got["knn6"].to_pylist() == pytest.approx([knn] * 7, rel=1e-6)
    assert got["instructmining"].to_pylist() == [None if v is None else pytest.approx(v, abs=1e-6) for v in by_hand]
    assert by_hand[3] == pytest.approx(1.0694 - 0.5992 + 0.41285 - 1.32229, abs=1e-5)  # row 3, digit by digit
    assert paper_rule().predict({"reward": [4.0], "output_tokens": [5000], "knn6": [knn]})[0] == pytest.approx(
        by_hand[3], abs=1e-12
    )
    with pytest.warns(UserWarning, match="--rule paper"):
        select.apply(table, selection)
    assert sorted(selection.kept.tolist()) == [0, 3, 5]  # the three lowest: rows 0 (-0.608), 3 (-0.502), 5 (-0.403)
    assert selection.reasons[4] == "not scored (no reward)"
    # refusals: no reward model, the offline stand-in, another reward model without its format
    for options, message in [({}, "the rule uses `reward`: give reward_model="),
                             ({"reward_model": "standin:x.json"}, "serves only a rule fitted on `reward_standin`"),
                             ({"reward_model": "my/rm"}, "give reward_format=")]:  # fmt: skip
        with pytest.raises(UsageError, match=re.escape(message)):
            from_method("instructmining", {"rule": "paper", "top": 3, **options}, input=str(SAMPLE))


def _paper_table(n: int = 8, seed: int = 0):
    """A score table with the paper rule's inputs: reward, output_tokens and an embedding per row."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 5)).astype(np.float32)
    return pa.table({
        "row": list(range(n)), "id": [str(i) for i in range(n)],
        "reward": rng.normal(0, 2, n).tolist(), "output_tokens": rng.integers(5, 900, n).tolist(),
        "embedding": pa.array(emb.tolist(), pa.list_(pa.float32(), 5)),
    }), emb  # fmt: skip


def test_paper_rule_shows_its_caveat_when_it_runs():
    """`--rule paper` states when it holds, and that the paper's Knn6 may be another quantity than ours,
    in its description and as a warning on the run's stderr; a fitted rule does not."""
    from instructsift.selection import Selection
    from instructsift.selection.instructmining import InstructMiningSelect

    table, _ = _paper_table()
    select = InstructMiningSelect(rule="paper", k=3)
    assert "only with the paper's indicators" in select.describe()
    assert "Knn6 may be defined differently" in select.describe() and "L2-normalised" in select.describe()
    with pytest.warns(UserWarning, match="--rule paper: .*Knn6 may be defined differently from ours"):
        select.apply(table, Selection.all(table.num_rows))


def test_infinite_indicators_are_not_scores(tmp_path):
    """+-inf in an indicator is no score: the selector drops the row with the indicator and its value as the
    reason and writes a null prediction; `mine`'s ranking leaves it out and logs why."""
    import pyarrow as pa

    from instructsift.experiments.mining import ranking
    from instructsift.selection import Selection
    from instructsift.selection.instructmining import InstructMiningSelect

    rule = InstructMiningRule.from_dict({"indicators": ["reward", "mtld"], "intercept": 1.0,
                                         "coef": {"reward": -0.1, "mtld": -0.01}})  # fmt: skip
    reward = [0.5, float("inf"), 1.0, None, 0.2, 2.0]
    mtld = [40.0, 50.0, float("-inf"), 30.0, 60.0, 10.0]
    table = pa.table({"row": range(6), "id": [str(i) for i in range(6)], "reward": reward, "mtld": mtld})
    rule.save(tmp_path / "rule.json")
    select, selection = InstructMiningSelect(rule=str(tmp_path / "rule.json"), k=2), Selection.all(6)
    pred = select.columns(table, selection)["instructmining"].to_pylist()
    assert [p is None for p in pred] == [False, True, True, True, False, False]
    select.apply(table, selection)
    reasons = selection.reasons
    assert "reward is inf" in reasons[1] and "mtld is -inf" in reasons[2] and "no reward" in reasons[3]
    # by hand: row 0: 1 - 0.05 - 0.4 = 0.55, row 4: 1 - 0.02 - 0.6 = 0.38, row 5: 1 - 0.2 - 0.1 = 0.7
    assert [pred[i] for i in (0, 4, 5)] == pytest.approx([0.55, 0.38, 0.7])
    assert sorted(selection.kept.tolist()) == [0, 4]
    logged: list[str] = []
    assert ranking(table, rule, logged.append) == [4, 0, 5]
    assert logged == ["3 rows not ranked (no finite prediction): row 1: reward is inf; row 2: mtld is -inf; "
                      "row 3: no reward"]  # fmt: skip


# -- the selector and the method ---------------------------------------------------------------------------
def test_method_selects_by_the_rule_end_to_end(tiny_reward, tmp_path):
    """`select --method instructmining --rule R --top 5` through the CLI: the kept rows are the 5 lowest
    predictions, which equal the rule applied to the written indicator columns by hand."""
    import pyarrow.parquet as pq

    rule = InstructMiningRule().fit(*_synthetic()[:2])
    rule.save(tmp_path / "fitted.json")
    out, scores = tmp_path / "picked.json", tmp_path / "scores.parquet"
    args = ["select", str(SAMPLE), "--method", "instructmining", "--rule", str(tmp_path / "fitted.json"),
            "--reward-model", str(tiny_reward), "--top", "5", "-o", str(out), "--save-scores", str(scores),
            "--dtype", "float32"]  # fmt: skip
    cli(*args)
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

    with pytest.raises(UsageError, match="reward_model="):
        from_method("instructmining", {"rule": "paper", "reward_model": "standin:x.json", "top": 3}, input=str(SAMPLE))
    with pytest.raises(UsageError, match="needs rule="):
        from_method("instructmining", {"top": 3}, input=str(SAMPLE))


def test_options_the_rule_does_not_use_are_refused(tmp_path):
    """A rule on `mtld` alone takes no reward model, reward format, UniEval evaluator or encoder: each is an
    error naming the option and the rule's indicators, never dropped silently; the paper's rule reads the
    paper's reward model in its own format (oasst) and asks for the format of any other."""
    from instructsift.errors import UsageError
    from instructsift.recipe import from_method

    X = {"mtld": np.linspace(10, 90, 8)}
    InstructMiningRule().fit(X, np.exp(1.0 - 0.01 * X["mtld"])).save(tmp_path / "mtld.json")
    rule = str(tmp_path / "mtld.json")
    for option, value in [("unieval", "MingZhong/unieval-dialog"), ("reward_model", "some/rm"),
                          ("reward_format", "oasst"), ("encoder", "embedded"), ("embed_text", "whole")]:  # fmt: skip
        with pytest.raises(UsageError, match=rf"{option}: not used by the rule's indicators \(mtld\)"):
            from_method("instructmining", {"rule": rule, option: value, "top": 3}, input=str(SAMPLE))
    from_method("instructmining", {"rule": rule, "top": 3}, input=str(SAMPLE))  # without them it runs
    with pytest.raises(UsageError, match="reward_format: not used"):  # the stand-in takes no format
        from_method("instructmining", {"reward_model": "standin:x.json", "reward_format": "pair"}, input=str(SAMPLE),
                    score_only=True)  # fmt: skip

    def reward_step(**options):
        recipe = from_method("instructmining", {"rule": "paper", "top": 3, **options}, input=str(SAMPLE))
        return next(st.options for st in recipe.steps if st.name == "reward")

    assert reward_step(reward_model="OpenAssistant/oasst-rm-2.1-pythia-1.4b-epoch-2.5")["format"] == "oasst"
    assert reward_step(reward_model="some/rm", reward_format="pair")["format"] == "pair"
    with pytest.raises(UsageError, match="give reward_format="):
        reward_step(reward_model="some/rm")


# -- fitting from experiments: subset means, the fit step and the selector in one recipe --------------------
def test_subset_means_by_hand():
    import pyarrow as pa

    from instructsift.train.instructmining import subset_means

    emb = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    table = pa.table({
        "row": list(range(9)), "id": [str(i) for i in range(9)],
        "loss_cond": [0.5, 1.0, None, 2.0, 0.1, 0.2, 0.3, 0.4, 0.6],
        "mtld": [10.0, 20, 30, 40, 50, 60, 70, 80, 90],
        "embedding": pa.array(emb.tolist(), pa.list_(pa.float32(), 4)),
    })  # fmt: skip
    got = subset_means(table, [[0, 1, 2], [3, 8]], ["ppl", "mtld", "knn2"])
    knn = knn_distance(emb, 2)
    np.testing.assert_allclose(got[0], [(np.exp(0.5) + np.exp(1.0)) / 2, 20.0, knn[[0, 1, 2]].mean()])
    np.testing.assert_allclose(got[1], [(np.exp(2.0) + np.exp(0.6)) / 2, 65.0, knn[[3, 8]].mean()])
    # the row without loss_cond (and one with an infinite mtld) is counted and logged, not dropped silently
    from instructsift.train.instructmining import fit_rule, subset_means_and_missing

    table = table.set_column(3, "mtld", pa.array([10.0, 20, 30, 40, 50, 60, 70, float("inf"), 90]))
    logged: list[str] = []
    got, missing = subset_means_and_missing(table, [[0, 1, 2], [3, 8], [2, 7, 6]], ["ppl", "mtld"], log=logged.append)
    assert missing == {"0": {"ppl": 1}, "2": {"ppl": 1, "mtld": 1}}
    assert got[2].tolist() == pytest.approx([(np.exp(0.4) + np.exp(0.3)) / 2, (30 + 70) / 2])
    assert logged == ["subset 0: rows without a value, left out of its mean (3 rows): ppl 1",
                      "subset 2: rows without a value, left out of its mean (3 rows): ppl 1, mtld 1"]  # fmt: skip
    subsets = [[i, (i + 1) % 9, (i + 3) % 9] for i in range(9)]
    rule = fit_rule(table, subsets, np.exp(np.arange(9) * 0.1), ["ppl", "knn2"], log=lambda _m: None)
    assert rule.missing_ == {"1": {"ppl": 1}, "2": {"ppl": 1}, "8": {"ppl": 1}}
    assert InstructMiningRule.from_dict(rule.to_dict()).missing_ == rule.missing_


def test_fit_step_and_selector_in_one_recipe(tmp_path):
    """Score lengths and MTLD, fit a rule from experiments whose losses follow a known rule, then select
    with "@mined": the fitted coefficients are the known ones and the kept rows its 5 best."""
    import pyarrow.parquet as pq

    import instructsift.pipeline as pipeline
    from instructsift import recipe as recipes

    cache = tmp_path / "c"
    scored = recipes.from_dict({"input": str(SAMPLE), "scores": str(tmp_path / "s.parquet"), "cache_dir": str(cache),
                                "steps": [{"score": "lengths"}, {"score": "mtld"}]})  # fmt: skip
    table = pipeline.run(scored, progress=False, log=lambda _m: None).table.to_pylist()
    rng = np.random.default_rng(0)
    subsets = [sorted(rng.choice(32, 8, replace=False).tolist()) for _ in range(12)]
    exps = []
    for rows in subsets:
        tok = np.mean([table[r]["output_tokens"] for r in rows])
        lex = np.mean([table[r]["mtld"] for r in rows])
        exps.append({"rows": rows, "loss": float(np.exp(0.9 + 0.002 * tok - 0.01 * lex))})
    (tmp_path / "exp.json").write_text(json.dumps({"subsets": exps}))
    recipe = recipes.from_dict(
        {
            "input": str(SAMPLE), "output": str(tmp_path / "picked.json"), "cache_dir": str(cache),
            "scores": str(tmp_path / "all.parquet"),
            "steps": [
                {"score": "lengths"}, {"score": "mtld"},
                {"fit": "instructmining", "as": "mined", "with": {"experiments": str(tmp_path / "exp.json"),
                 "scores": str(tmp_path / "s.parquet"), "indicators": ["output_tokens", "mtld"]}},
                {"select": "instructmining", "with": {"rule": "@mined", "k": 5}},
            ],
        }
    )  # fmt: skip
    result = pipeline.run(recipe, progress=False, log=lambda _m: None)
    rule = InstructMiningRule.load(result.artifacts["mined"])
    assert Path(result.artifacts["mined"]).parent == cache / "artifacts"  # under the run's one cache root
    assert rule.intercept_ == pytest.approx(0.9, abs=1e-8)
    assert rule.coef_ == pytest.approx({"output_tokens": 0.002, "mtld": -0.01}, abs=1e-10)
    pred = pq.read_table(tmp_path / "all.parquet").column("instructmining").to_pylist()
    best = sorted(range(32), key=lambda i: (pred[i], i))[:5]
    assert result.picked.rows == sorted(best)


# -- the experiment design ---------------------------------------------------------------------------------
def shared_sources(data: Path) -> dict[str, Path]:
    """The five AlpacaEval answer files (the same 805 instructions) and four instruction data sets."""
    answers = {p.stem: p for p in sorted((data / "alpaca_eval").glob("*.json"))}
    extra = {"alpaca": "alpaca/alpaca_random_9k.json", "dolly": "dolly/dolly_3k.json", "lima": "lima/lima_1k.json",
             "code_alpaca": "code/code_alpaca_2k.json"}  # fmt: skip
    return {**answers, **{name: data / path for name, path in extra.items()}}


def test_design_takes_its_sources_as_arguments(tmp_path):
    """`instructsift design` knew the shared data folder's file names: it takes NAME=FILE (or FILE) now."""
    rows = [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(12)]
    (tmp_path / "strong.json").write_text(json.dumps(rows))
    (tmp_path / "weak.jsonl").write_text("".join(json.dumps({**r, "output": "meh"}) + "\n" for r in rows))
    out = tmp_path / "design"
    args = ["design", str(tmp_path / "strong.json"), f"poor={tmp_path / 'weak.jsonl'}", "--eval-source", "strong"]
    cli(*args, "-o", out, "--subsets", 3, "--size", 4, "--held-out", 3)
    pool = json.loads((out / "pool.json").read_text())
    assert {r["source"] for r in pool} == {"strong", "poor"} and len(pool) == 18  # 12 + 12 less 2 x 3 held out
    assert {r["source"] for r in json.loads((out / "eval.json").read_text())} == {"strong"}
    bad = cli(*args[:3], "--eval-source", "gpt4", "-o", tmp_path / "x", check=False)
    assert bad.returncode == 2 and "'gpt4' is not one of the sources (strong, poor)" in bad.output
    missing = cli("design", "a=nope.json", args[1], "--eval-source", "a", "-o", out, check=False)
    assert missing.returncode == 2 and "nope.json: no such file" in missing.output


def test_design_keeps_held_out_instructions_out_of_every_subset(shared_data, tmp_path):
    from instructsift.experiments.design import load_sources, mixture_design, normalise

    sources = load_sources(shared_sources(shared_data))
    design = mixture_design(sources, n_subsets=10, size=150, held_out=80, eval_source="gpt4", seed=3)
    held = {normalise(r["instruction"]) for r in design.eval}
    assert len(design.eval) == 80 and all(r["source"] == "gpt4" for r in design.eval)
    for rows, mix in zip(design.subsets, design.mixes, strict=True):
        assert len(rows) == len(set(rows)) == 150 == sum(mix.values())
        assert not held & {normalise(design.pool[i]["instruction"]) for i in rows}
        assert {design.pool[i]["source"] for i in rows} == set(mix)
    assert len({tuple(m.items()) for m in design.mixes}) == 10  # random proportions
    again = mixture_design(sources, n_subsets=10, size=150, held_out=80, eval_source="gpt4", seed=3)
    assert again.subsets == design.subsets
    path = design.save(tmp_path / "d")
    saved = json.loads(path.read_text())
    assert [s["rows"] for s in saved["subsets"]] == design.subsets
    assert len(json.loads((tmp_path / "d" / "pool.json").read_text())) == len(design.pool)


# -- the subset-size search --------------------------------------------------------------------------------
def _curve(k: int) -> float:
    """A double-descent-like curve: a bump at ~60 and the lowest loss at k = 300."""
    import math

    return 1 + (math.log(k) - math.log(300)) ** 2 + 0.4 * math.exp(-((math.log(k) - math.log(60)) ** 2) / 0.05)


def test_search_finds_the_best_k_caches_and_resumes(tmp_path):
    from instructsift.experiments.search import search_size

    calls: list[int] = []
    order = list(range(5000))[::-1]

    def loss_of(rows):
        assert list(rows) == order[: len(rows)]  # the top k of the ranking
        calls.append(len(rows))
        return _curve(len(rows))

    journal = tmp_path / "search.jsonl"
    first = search_size(loss_of, order, low=10, high=5000, budget=12, journal=journal)
    assert first.calls == len(calls) == 12 and len(set(calls)) == 12
    more = search_size(loss_of, order, low=10, high=5000, budget=30, journal=journal)
    assert len(calls) == 30 and len(set(calls)) == 30  # resumed: no k evaluated twice
    again = search_size(loss_of, order, low=10, high=5000, budget=30, journal=journal)
    assert again.calls == 0 and again.best_k == more.best_k  # all cached
    assert more.best_k == min(set(calls), key=_curve)
    assert abs(np.log(more.best_k) - np.log(300)) < 0.3, more.best_k


def test_search_refuses_another_rankings_journal(tmp_path):
    from instructsift.data.errors import OptionError
    from instructsift.experiments.search import search_size

    journal = tmp_path / "search.jsonl"
    search_size(lambda r: _curve(len(r)), list(range(100)), low=2, high=100, budget=3, journal=journal)
    with pytest.raises(OptionError, match="another search"):
        search_size(lambda r: _curve(len(r)), list(range(1, 101)), low=2, high=100, budget=3, journal=journal)


def test_sweep_reuses_search_trials_and_plots(tmp_path):
    from instructsift.experiments.search import even_ks, plot_curve, search_size, sweep

    calls: list[int] = []

    def loss_of(rows):
        calls.append(len(rows))
        return _curve(len(rows))

    order, journal = list(range(2000)), tmp_path / "j.jsonl"
    result = search_size(loss_of, order, low=10, high=2000, budget=6, journal=journal)
    ks = sorted({*even_ks(10, 2000, 8), calls[0]})
    n = len(calls)
    curve = sweep(loss_of, order, ks, journal=journal)
    assert [t.k for t in curve] == ks and len(calls) == n + len(ks) - 1  # the search's k is not run again
    png = plot_curve(result.trials + curve, tmp_path / "curve.png", best_k=result.best_k)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reward_standin_is_its_head_on_the_embedding(shared_data, alpaca_rows, tmp_path):
    """The offline stand-in: a Bradley-Terry head trained on real preference pairs; its score is w . v with
    v the embed scorer's vector of the response (text="response", the last answer)."""
    from instructsift.scoring.embed import Embed
    from instructsift.scoring.reward_standin import RewardStandin

    dataset, _ = alpaca_rows
    standin = RewardStandin(str(shared_data / "preference" / "dpo_en_demo.json"), limit=60)
    table = score(dataset, [standin, Embed(text="response")], cache_dir=tmp_path, progress=False)
    # one cache root: the head is an artifact under the cache_dir given
    head = json.loads((tmp_path / "artifacts" / f"reward-standin-{standin.cache_key()}.json").read_text())
    assert head["pairs"] == 60 and head["train_accuracy"] >= 0.9
    w = np.asarray(head["w"])
    for row in table.to_pylist():
        assert row["reward_standin"] == output(float(np.asarray(row["embedding"]) @ w))
    assert "STAND-IN" in standin.describe() and "not the paper's model" in standin.describe()


def test_mine_runs_the_whole_chain_and_resumes(tmp_path):
    """design -> indicators -> experiments -> rule -> ranking -> BlendSearch + sweep -> curve, with a
    loss_of whose subset losses follow a known rule and whose size curve has its minimum at k = 12."""
    import pyarrow.parquet as pq

    from instructsift.experiments.mining import mine

    folder = tmp_path / "design"
    folder.mkdir()
    (folder / "pool.json").write_text(SAMPLE.read_text())
    rng = np.random.default_rng(1)
    subsets = [sorted(rng.choice(32, 8, replace=False).tolist()) for _ in range(12)]
    (folder / "design.json").write_text(json.dumps({"pool": "pool.json", "subsets": [{"rows": s} for s in subsets]}))
    out, calls = tmp_path / "out", []

    def loss_of(rows):
        calls.append(list(rows))
        t = pq.read_table(out / "pool.scores.parquet").to_pylist()
        tok, lex = np.mean([t[r]["output_tokens"] for r in rows]), np.mean([t[r]["mtld"] for r in rows])
        return float(np.exp(0.9 + 0.002 * tok - 0.01 * lex + 0.3 * (np.log(len(rows)) - np.log(12)) ** 2))

    kw = dict(indicators=["output_tokens", "mtld", "knn6"], low=2, high=32, budget=8, sweep_points=5,
              cache_dir=tmp_path / "c", log=lambda _m: None)  # fmt: skip
    summary = mine(folder / "design.json", loss_of, out, **kw)
    assert summary["rule"]["coef"]["output_tokens"] == pytest.approx(0.002, abs=1e-9)
    assert summary["rule"]["coef"]["mtld"] == pytest.approx(-0.01, abs=1e-9)
    assert summary["rule"]["coef"]["knn6"] == pytest.approx(0.0, abs=1e-7)  # the losses do not depend on it
    scored = pq.read_table(out / "pool.scores.parquet")  # knn6 is a named column: the brute force over the pool
    emb = np.asarray(scored.column("embedding").to_pylist())
    np.testing.assert_allclose(scored.column("knn6").to_pylist(), knn_distance(emb, 6), rtol=1e-9)
    evaluated = {len(r): loss_of(r) for r in calls[12:]}
    assert summary["best_k"] == min(evaluated, key=lambda k: (evaluated[k], k))
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG" and (out / "rule.json").exists()
    n = len(calls)
    again = mine(folder / "design.json", loss_of, out, **kw)
    assert len(calls) == n + 12 and again["best_k"] == summary["best_k"]  # only the 12 experiments again


# -- UniEval-style indicators ------------------------------------------------------------------------------
def test_unieval_is_the_yes_share_of_the_first_decoder_step(alpaca_rows, tiny_t5, tmp_path):
    """Each dimension = P(Yes)/(P(Yes)+P(No)) of one unbatched forward pass on UniEval's dialogue question,
    written out here by hand; the scorer batches with padding and must agree."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from instructsift.scoring.unieval import UniEval

    dataset, records = alpaca_rows
    scorer = UniEval(str(tiny_t5), dtype="float32", batch_size=4)
    table = score(dataset, [scorer], cache_dir=tmp_path, progress=False).to_pylist()
    tok = AutoTokenizer.from_pretrained(tiny_t5)
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5, dtype=torch.float32).eval()
    yes, no = tok("Yes").input_ids[0], tok("No").input_ids[0]
    assert yes != no
    for rec, row in zip(records, table, strict=True):
        history = rec["instruction"] + (f"\n\n{rec['input']}" if rec["input"] else "")
        asked = {
            "naturalness": f"question: Is this a natural response in the dialogue? </s> response: {rec['output']}",
            "coherence": "question: Is this a coherent response given the dialogue history? </s> response: "
            f"{rec['output']} </s> dialogue history: {history}",
            "understandability": "question: Is this an understandable response in the dialogue? </s> response: "
            + rec["output"],
        }
        for dim, text in asked.items():
            ids = torch.tensor([tok(text).input_ids])
            with torch.no_grad():
                logits = model(input_ids=ids, decoder_input_ids=torch.tensor([[0]])).logits[0, 0]
            p = torch.softmax(logits, dim=-1)
            expect = float(p[yes] / (p[yes] + p[no]))
            assert row[dim] == ratio(expect) and 0 < row[dim] < 1  # a probability: relative
        assert row["unieval_reason"] is None and row["unieval_truncated"] is False
    assert len({row["coherence"] for row in table}) == len(table)  # the rows differ, so do their scores
    assert "P(Yes)/(P(Yes)+P(No))" in scorer.describe()
    # the instructmining method's step (a rule on coherence, `unieval` given) gives the same column
    from instructsift import pipeline
    from instructsift import recipe as recipes
    from instructsift.methods.instructmining import Params, scoring_steps

    steps = scoring_steps(["coherence"], Params(unieval=str(tiny_t5), dtype="float32"))
    recipe = recipes.from_dict({"input": dataset.path, "cache_dir": str(tmp_path), "steps": steps})
    got = pipeline.run(recipe, progress=False, log=lambda _m: None).table.column("coherence").to_pylist()
    assert got == ratio([row["coherence"] for row in table])


def test_unieval_indicators_need_an_evaluator():
    from instructsift.methods.instructmining import Params, indicators_for, scoring_steps
    from instructsift.scoring.unieval import UniEval

    with pytest.raises(ValueError, match="give unieval=MODEL"):
        scoring_steps(["naturalness", "mtld"], Params())
    steps = scoring_steps(["coherence"], Params(unieval="MingZhong/unieval-dialog"))
    assert steps == [{"score": "unieval", "with": {"model": "MingZhong/unieval-dialog", "dimensions": ["coherence"]}}]
    assert indicators_for(Params(unieval="x"))[-3:] == ["naturalness", "coherence", "understandability"]
    with pytest.raises(Exception, match="dimensions must be among"):
        UniEval("x", dimensions=["fluency"])


def test_select_applies_a_unieval_rule_from_the_cli(alpaca_rows, tiny_t5, tmp_path):
    """`select --method instructmining --rule R --unieval T5 --top 3`: a rule fitted on naturalness, coherence
    and output_chars scores them with the given evaluator (equal to the scorer run alone) and keeps its 3
    lowest predictions; without --unieval the run stops with a one-line error naming the option; a method
    that does not take --unieval refuses it."""
    import pyarrow.parquet as pq

    from instructsift.scoring.unieval import UniEval

    dataset, records = alpaca_rows
    rng = np.random.default_rng(4)
    X = {
        "naturalness": rng.uniform(0, 1, 20),
        "coherence": rng.uniform(0, 1, 20),
        "output_chars": rng.uniform(50, 900, 20),
    }
    rule = InstructMiningRule().fit(
        X, np.exp(1.1 - 0.3 * X["naturalness"] - 0.5 * X["coherence"] + 2e-4 * X["output_chars"])
    )
    rule.save(tmp_path / "fitted.json")
    out, scores = tmp_path / "picked.json", tmp_path / "scores.parquet"
    base = ["select", dataset.path, "--method", "instructmining", "--rule", str(tmp_path / "fitted.json"), "--top", "3",
            "-o", str(out), "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    cli(*base, "--unieval", tiny_t5, "--dtype", "float32", "--save-scores", scores)
    table = pq.read_table(scores).to_pylist()
    alone = score(dataset, [UniEval(str(tiny_t5), dtype="float32")], cache_dir=tmp_path / "alone", progress=False)
    for r, a in zip(table, alone.to_pylist(), strict=True):
        for dim in ("naturalness", "coherence"):
            assert r[dim] == ratio(a[dim]) and 0 < r[dim] < 1
        assert r["output_chars"] == len(records[r["row"]]["output"])
        by_hand = rule.intercept_ + sum(rule.coef_[k] * r[k] for k in ("naturalness", "coherence", "output_chars"))
        assert r["instructmining"] == pytest.approx(by_hand, abs=1e-12)
    pred = [r["instructmining"] for r in table]
    best = sorted(range(len(pred)), key=lambda i: (pred[i], i))[:3]
    assert json.loads(out.read_text()) == [records[i] for i in sorted(best)]

    missing = cli(*base, "--overwrite", check=False)
    assert missing.returncode == 2
    assert "naturalness, coherence: give --unieval MODEL" in missing.output and "Traceback" not in missing.output
    other = cli("select", dataset.path, "-m", "superfiltering", "--ratio", 0.5, "-o", tmp_path / "x.json",
                "--unieval", tiny_t5, check=False)  # fmt: skip
    assert other.returncode == 2 and "does not take 'unieval'" in other.output


def test_load_pretrained_loads_any_auto_class_for_scoring(tiny_t5, tiny_reward):
    """The shared loader: the resolved folder, in eval mode, in the asked dtype, on the chosen device; a
    `LoadedModel` passes through as it is."""
    import torch

    from instructsift.models import load_pretrained, resolve

    cases = [(tiny_t5, "AutoModelForSeq2SeqLM", "T5ForConditionalGeneration"),
             (tiny_reward, "AutoModelForSequenceClassification", "LlamaForSequenceClassification")]  # fmt: skip
    for path, auto, cls in cases:
        lm = load_pretrained(str(path), auto, dtype="float32", device="cpu")
        assert type(lm.model).__name__ == cls
        assert not lm.model.training and lm.dtype == torch.float32 and lm.device == "cpu"
        assert next(lm.model.parameters()).dtype == torch.float32
        assert lm.source.fingerprint == resolve(str(path)).fingerprint and lm.tokenizer("Yes").input_ids
        assert load_pretrained(lm, auto) is lm
