"""The experiment runner and `instructsift compare`, on a tiny randomly initialised model and real rows.

The tiny model is conftest's `tiny_bpe_llama`, a 2-layer, 32-wide Llama with a small BPE tokenizer, so a trial
(fine-tune a few steps, evaluate a few rows) takes about a second on a CPU.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import cli
from tolerances import OUTPUT_ABS, REL

ALPACA = "alpaca/alpaca_random_9k.json"


@pytest.fixture(scope="module")
def rows(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 short real Alpaca rows to select from and 8 others held out, as files."""
    data = json.loads((shared_data / ALPACA).read_text())
    short = sorted(data[:300], key=lambda r: len(r["instruction"]) + len(r["input"]) + len(r["output"]))
    folder = tmp_path_factory.mktemp("rows")
    (folder / "pool.json").write_text(json.dumps(short[:24]))
    (folder / "held_out.json").write_text(json.dumps(short[24:32]))
    return folder / "pool.json", folder / "held_out.json"


@pytest.fixture(scope="module")
def tiny_model(tiny_bpe_llama: Path) -> Path:
    """conftest's tiny BPE Llama (built once per session)."""
    return tiny_bpe_llama


def _config(**kw):
    from instructsift.train.finetune import FinetuneConfig

    base = dict(lora=False, lr=5e-3, epochs=1, batch_size=4, max_length=256, checkpoint_steps=1, dtype="float32")
    return FinetuneConfig(**{**base, **kw})


def _runner(rows, tiny_model: Path, cache: Path, **kw):
    from instructsift.data import read
    from instructsift.experiments.runner import ExperimentRunner

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


def test_trials_in_a_shared_folder_resume_a_run_on_a_machine_without_the_cache(
    rows, tiny_model: Path, tmp_path: Path
) -> None:
    """A trial finished on one machine (its own cache) is written to `trials_dir`; a runner on another with an
    empty cache reads it back instead of fine-tuning, while one without `trials_dir` fine-tunes again."""
    shared = tmp_path / "trials"
    first = _runner(rows, tiny_model, tmp_path / "cache-a", trials_dir=shared)
    done = first.trial("a", [0, 1, 2, 3])
    assert first.trained == [done.key]
    assert sorted(p.name for p in shared.iterdir()) == [f"{done.key}.json"]

    elsewhere = _runner(rows, tiny_model, tmp_path / "cache-b", trials_dir=shared)
    back = elsewhere.trial("again", [3, 2, 1, 0])
    assert elsewhere.trained == [] and back.cached and back.name == "again"
    assert (back.eval_loss, back.eval_losses, back.steps) == (done.eval_loss, done.eval_losses, done.steps)

    alone = _runner(rows, tiny_model, tmp_path / "cache-b")
    assert alone.cached([0, 1, 2, 3]) is None
    assert alone.trial("a", [0, 1, 2, 3]).cached is False and alone.trained == [done.key]


def test_loss_function_and_bad_subsets(rows, tiny_model: Path, tmp_path: Path) -> None:
    from instructsift.data.errors import OptionError

    runner = _runner(rows, tiny_model, tmp_path / "cache")
    loss = runner([3, 1, 2])
    assert loss == runner.loss([1, 2, 3]) and len(runner.trained) == 1
    for bad, why in (([], "empty"), ([0, 24], "outside"), ([1, 1], "more than once")):
        with pytest.raises(OptionError, match=why):
            runner.loss(bad)


# -- compare ---------------------------------------------------------------------------------------------------
def test_random_subsets_are_reproducible_by_seed() -> None:
    import numpy as np

    from instructsift.selection.sample import random_subset

    a = random_subset(1000, 50, 3)
    assert a == sorted(np.random.default_rng(3).permutation(1000)[:50].tolist())
    assert a != random_subset(1000, 50, 4)
    assert a == sorted(set(a)) and len(a) == 50 and a[0] >= 0 and a[-1] < 1000


def _spec(rows, tiny_model: Path, cache: Path, **kw):
    from instructsift.experiments.compare_spec import CompareSpec

    pool, held = rows
    base = dict(
        data=str(pool),
        eval=str(held),
        methods=["lima"],
        budget=4,
        base=str(tiny_model),
        random_seeds=2,
        full=True,
        options={"*": {"model": str(tiny_model)}, "lima": {"min_chars": 0}},
        finetune=dict(lora=False, lr=5e-3, epochs=1, batch_size=2, warmup_ratio=0.0, max_length=256, dtype="float32"),
        eval_dtype="float32",
        cache_dir=str(cache),
        plot=_has_matplotlib(),
    )
    return CompareSpec(**{**base, **kw})


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _md_rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def _seconds(text: str) -> float | None:
    if text == "-":
        return None
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+)s", text)
    assert m, text
    h, mi, s = (int(x) if x else 0 for x in m.groups())
    return 3600 * h + 60 * mi + s


def _num(text: str) -> float | None:
    return None if text == "-" else float(text.replace(",", ""))


@pytest.fixture(scope="module")
def first_compare(rows, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """`compare` of lima against 2 random picks and the full pool, on a fresh cache: (spec, output folder,
    result). Later tests copy its cache, so that they train only the trials it does not have."""
    from instructsift.experiments.compare import compare

    folder = tmp_path_factory.mktemp("first-compare")
    spec = _spec(rows, tiny_model, folder / "cache")
    return spec, folder / "out", compare(spec, folder / "out", progress=False)


def test_compare_writes_a_table_equal_to_its_json_and_a_new_method_adds_one_trial(
    first_compare, tmp_path: Path
) -> None:
    import shutil

    from instructsift.data.errors import OutputError
    from instructsift.experiments.compare import compare

    first_spec, first_out, r = first_compare
    out = tmp_path / "out"  # a copy of the fixture's run: this test adds to it
    shutil.copytree(first_out, out)
    shutil.copytree(first_spec.cache_dir, tmp_path / "cache")
    spec = first_spec.model_copy(update={"cache_dir": str(tmp_path / "cache")})
    assert r["trained_now"] == 4 and r["budget"]["examples"] == 4
    assert [row["name"] for row in r["rows"]] == ["lima", "random-0", "random-1", "full", "random (mean of 2)"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == r["rows"] and saved["machine"]["cpus"] and saved["finetune"]["lr"] == 5e-3
    assert len(saved["selections"]["lima"]["ids"]) == 4
    # every number in the Markdown table is results.json's, as printed
    table = _md_rows((out / "results.md").read_text())
    assert len(table) == len(saved["rows"])
    for cells, row in zip(table, saved["rows"], strict=True):
        name, n, trained, steps, loss, d_rand, ci, z, d_long, ci_long, d_full, rho, ratio, sel, train = cells
        length = row["length"] or {}
        assert rho == ("-" if length.get("rho") is None else f"{length['rho']:+.2f}")
        assert ci == ("-" if row["random_ci"] is None else "[{:+.4f}, {:+.4f}]".format(*row["random_ci"]))
        assert d_long == ci_long == "-"  # no longest arm here
        assert name == row["name"] and _num(n) == row["n"] and _num(trained) == row["trained_tokens"]
        assert _num(steps) == row["steps"] == (2 if row["n"] == 4 else 12)  # batch 2, one epoch
        assert _num(loss) == round(row["eval_loss"], 4)
        assert _num(d_rand) == round(row["delta_random"], 4)
        assert _num(z) == (None if row["z_random"] is None else round(row["z_random"], 2))
        assert _num(d_full) == round(row["delta_full"], 4)
        assert _seconds(sel) == (None if row["select_seconds"] is None else round(row["select_seconds"]))
        assert _seconds(train) == round(row["train_seconds"])
    mean = next(row for row in saved["rows"] if row["kind"] == "random-mean")
    randoms = [row["eval_loss"] for row in saved["rows"] if row["kind"] == "random"]
    assert mean["eval_loss"] == pytest.approx(sum(randoms) / 2) and mean["delta_random"] == pytest.approx(0)
    full = next(row for row in saved["rows"] if row["kind"] == "full")
    assert full["delta_full"] == 0 and full["n"] == 24
    assert len(set(randoms + [full["eval_loss"]])) == 3 and mean["z_random"] is not None  # the trials trained
    if _has_matplotlib():
        assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"

    with pytest.raises(OutputError, match="--overwrite"):
        compare(spec, out, progress=False)
    again = compare(
        spec.model_copy(update={"methods": ["lima", "superfiltering"]}), out, overwrite=True, progress=False
    )
    assert again["trained_now"] == 1  # superfiltering's pick; the rest from the cache
    lima = [row["eval_loss"] for row in again["rows"] if row["name"] == "lima"]
    assert lima == [r["rows"][0]["eval_loss"]]


def test_compare_report_shows_the_losses_and_each_methods_scores_and_picks(
    rows, tiny_model: Path, first_compare, tmp_path: Path
):
    """The recipe's `report` key (and `--report`) writes the page: the loss table as results.json has it, the
    loss plot, the score columns of both methods with their cut-offs, and every pick in the overlap.
    (On a copy of `first_compare`'s cache: its lima and random trials are not trained again.)"""
    pytest.importorskip("plotly", reason="the report needs plotly: pip install 'instructsift[report]'")
    import shutil

    from instructsift.experiments.compare_spec import save_spec

    shutil.copytree(first_compare[0].cache_dir, tmp_path / "cache")
    spec = _spec(rows, tiny_model, tmp_path / "cache", methods=["lima", "superfiltering"], full=False, plot=False,
                 output=str(tmp_path / "out"), report=str(tmp_path / "page.html"))  # fmt: skip
    recipe = tmp_path / "recipes" / "compare.yaml"
    recipe.parent.mkdir()
    save_spec(spec, recipe)
    assert "report: ../page.html" in recipe.read_text()
    cli("compare", recipe, "-q")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    html = (tmp_path / "page.html").read_text(encoding="utf-8")
    for sid in ("counts", "scores", "correlations", "overlap", "compare"):
        assert f'<section id="{sid}"' in html, sid
    assert 'id="fig-compare"' in html and 'id="fig-jaccard"' in html
    table = re.search(r'<table[^>]*data-table="compare".*?</table>', html, re.S).group(0)
    for t in saved["trials"]:
        assert f"<td>{t['name']}</td>" in table and f"<td>{t['eval_loss']:.4f}</td>" in table
    assert "ifd_ppl" in html and "superfiltering: top 4 by ifd_ppl" in html  # superfiltering's scores and cut
    assert "lima: " in html  # lima's own cut-offs, named by the method
    sel = re.search(r'<table[^>]*data-table="selections".*?</table>', html, re.S).group(0)
    for name in ("lima", "superfiltering", "random-0", "random-1"):
        assert f"<td>{name}</td>" in sel

    other = tmp_path / "other.html"
    r = cli("compare", recipe, "-q", "--report", other, "--overwrite")
    assert f"(report: {other})" in r.output and '<section id="compare"' in other.read_text(encoding="utf-8")
    bad = cli("compare", recipe, "--report", tmp_path / "page.txt", "--overwrite", check=False)
    assert bad.returncode == 2 and "page.txt" in bad.output


def test_paired_difference_against_a_hand_computation() -> None:
    from instructsift.experiments.intervals import mean_losses, paired_difference

    # two examples: a resample is (x, x), (x, y) or (y, x), (y, y); the token-weighted means are
    # d1, (w1 d1 + w2 d2) / (w1 + w2), d2 with probabilities 1/4, 1/2, 1/4: the 95% interval is [d1, d2]
    p = paired_difference([1.0, 3.0], [0.5, 1.0], [10, 30])
    assert p.delta == (10 * 0.5 + 30 * 2.0) / 40 and (p.low, p.high) == (0.5, 2.0) and not p.includes_zero
    same = paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], [3, 4, 5])
    assert same.delta == same.low == same.high == pytest.approx(0.5, rel=1e-12)
    mixed = paired_difference([1.0, 2.0, None, 0.0], [2.0, 1.0, 5.0, 0.0], [1, 1, 1, 1])
    assert mixed.examples == 3 and mixed.includes_zero  # the skipped example is left out
    assert mean_losses([[1.0, None, 3.0], [2.0, 4.0, 5.0]]) == [1.5, None, 4.0]
    with pytest.raises(ValueError, match="different held-out sets"):
        paired_difference([1.0], [1.0, 2.0], [1, 1])


def test_fill_tokens_takes_the_order_until_the_budget_and_the_last_only_when_nearer() -> None:
    from instructsift.selection.budget import fill_tokens, rows_needed

    tokens = [100, 40, 70, 10, 250, 5, 300]
    assert fill_tokens([0, 1, 2, 3], tokens, 150) == [0, 1]  # 140; +70 = 210 is farther from 150
    assert fill_tokens([0, 1, 3, 2], tokens, 150) == [0, 1, 3]  # exactly 150: stop
    assert fill_tokens([0, 2], tokens, 150) == [0, 2]  # 100 -> 170 is nearer than 100
    assert fill_tokens([4, 0], tokens, 150) == [4]  # 250 is nearer 150 than 0 is: within half an example
    assert fill_tokens([6, 0], tokens, 150) == []  # 300 is as far as 0: not taken, and the fill stops
    assert fill_tokens([5, 3], tokens, 150) == [5, 3]  # the order ran out
    assert fill_tokens([0, 1], tokens, 0) == []
    assert rows_needed(tokens, 150) == 5  # 5+10+40+70+100: the most rows any order can take
    assert rows_needed(tokens, 10_000) == len(tokens)


def test_a_token_budget_gives_every_pick_the_same_trained_tokens(rows, tiny_model: Path, tmp_path: Path) -> None:
    """longest (few long answers) and random picks fill one token budget, counted as the trainer counts."""
    from instructsift.api import read
    from instructsift.experiments.compare import compare
    from instructsift.selection.size import share
    from instructsift.train.finetune import FinetuneConfig, training_costs

    spec = _spec(rows, tiny_model, tmp_path / "cache", budget=None, budget_tokens=0.3, methods=["longest"],
                 options={}, full=False)  # fmt: skip
    r = compare(spec, tmp_path / "out", progress=False)
    costs = training_costs(read(rows[0]).examples, str(tiny_model), FinetuneConfig(**spec.finetune))
    each = [c.tokens for c in costs]
    budget = r["budget"]["tokens"]
    assert budget == share(0.3, sum(each)) and r["budget"]["of_tokens"] == sum(each)
    picks = {t["name"]: t for t in r["trials"]}
    assert len(r["selections"]["longest"]["ids"]) == picks["longest"]["n"]
    largest = max(each)
    for row in r["rows"]:
        if row["kind"] == "random-mean":
            continue
        assert abs(row["trained_tokens"] - budget) <= largest / 2, row  # within half an example of the budget
    by_name = {row["name"]: row for row in r["rows"]}
    assert by_name["longest"]["n"] < by_name["random-0"]["n"]  # long answers: fewer examples for the same tokens
    # the pick is longest's own order: its n longest answers (by characters), nothing skipped
    pool = json.loads(rows[0].read_text())
    longest = sorted(range(len(pool)), key=lambda i: (-len(pool[i]["output"]), i))[: by_name["longest"]["n"]]
    assert sorted(r["selections"]["longest"]["ids"]) == sorted(read(rows[0]).examples[i].id for i in longest)
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"budget {budget:,} trained answer tokens per pick" in md
    # steps as the trainer took them; per-example held-out losses saved with each trial and paired
    from instructsift.train.finetune import optimizer_steps

    for t in r["trials"]:
        rows_of = [
            i
            for i, ex in enumerate(read(rows[0]).examples)
            if ex.id in set(r["selections"].get(t["name"], {}).get("ids", []))
        ]
        if rows_of:
            assert t["steps"] == optimizer_steps(
                sum(costs[i].sequences for i in rows_of), FinetuneConfig(**spec.finetune)
            )
        assert len(t["eval_losses"]) == len(t["eval_counts"]) == 8 and sum(t["eval_counts"]) == t["eval_tokens"]
        weighted = sum(x * n for x, n in zip(t["eval_losses"], t["eval_counts"], strict=True)) / t["eval_tokens"]
        assert weighted == pytest.approx(t["eval_loss"], rel=1e-9)
    low, high = by_name["longest"]["random_ci"]
    assert low <= by_name["longest"]["delta_random"] <= high
    assert ("no difference from random shown" in md) == (low <= 0 <= high)
    # the length diagnostic: longest ranks by characters, which is nearly the trained tokens' order
    from scipy.stats import spearmanr

    diag = by_name["longest"]["length"]
    chars = [len(r["output"]) for r in pool]
    assert diag["score"] == "output_chars" and diag["rows"] == len(pool)
    assert diag["rho"] == pytest.approx(spearmanr(chars, each).statistic, rel=1e-9) and diag["length_filter"]
    assert diag["pick_mean_tokens"] > diag["pool_mean_tokens"] == pytest.approx(sum(each) / len(each), rel=1e-12)
    assert "longest: " in md and "mostly a length filter on this data" in md
    assert by_name["random-0"]["length"] is None
    again = compare(spec, tmp_path / "out2", progress=False)  # cached: the per-example losses come back
    assert again["trained_now"] == 0 and again["rows"][0]["random_ci"] == by_name["longest"]["random_ci"]


def test_several_budgets_give_a_curve_and_reuse_their_trials(rows, tiny_model: Path, tmp_path: Path) -> None:
    from instructsift.experiments.compare import compare
    from instructsift.selection.size import parse_budget

    assert parse_budget("4,8") == [4, 8] and parse_budget("0.05, 0.1") == [0.05, 0.1]
    spec = _spec(rows, tiny_model, tmp_path / "cache", budget=[4, 8], methods=["longest"], options={},
                 random_seeds=1)  # fmt: skip
    r = compare(spec, tmp_path / "out", progress=False)
    assert [p["given"] for p in r["points"]] == [4, 8] and r["by"] == "budget"
    for p in r["points"]:
        one = json.loads((tmp_path / "out" / p["folder"] / "results.json").read_text())
        assert one["rows"] == p["rows"] and one["budget"]["examples"] == p["given"]
        assert {row["name"]: row["n"] for row in p["rows"]} == {
            "longest": p["given"], "random-0": p["given"], "full": 24, "random (mean of 1)": p["given"]}  # fmt: skip
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["points"] == json.loads(json.dumps(r["points"], default=str))
    md = (tmp_path / "out" / "results.md").read_text()
    longest = next(ln for ln in md.splitlines() if ln.startswith("| longest |"))
    at = [next(row for row in p["rows"] if row["name"] == "longest") for p in r["points"]]
    assert longest == "| longest | " + " | ".join(
        f"{a['eval_loss']:.4f} ({a['n']:,}, {a['trained_tokens']:,})" for a in at) + " |"  # fmt: skip
    if _has_matplotlib():
        assert (tmp_path / "out" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # a third budget later: only its trials train (full is shared by every budget)
    more = compare(spec.model_copy(update={"budget": [4, 8, 12]}), tmp_path / "out", overwrite=True, progress=False)
    assert [p["given"] for p in more["points"]] == [4, 8, 12]
    trained = [
        json.loads((tmp_path / "out" / f"budget-{b}" / "results.json").read_text())["trained_now"] for b in (4, 8, 12)
    ]
    assert trained == [0, 0, 2]


def test_two_held_out_sets_give_a_loss_column_each(rows, tiny_model: Path, tmp_path: Path, shared_data: Path) -> None:
    """--eval twice: each tuned model is evaluated on both; the second set's loss is the evaluator's own."""
    from instructsift.api import read
    from instructsift.train.evaluate import evaluate

    pool, held = rows
    human = [r for r in json.loads((shared_data / "dolly" / "dolly_3k.json").read_text()) if len(r["output"]) < 200][:5]
    second = tmp_path / "human.jsonl"
    second.write_text("".join(json.dumps(r) + "\n" for r in human))
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["compare", str(pool), "--budget", "4", "--eval", str(held), "--eval", str(second), "--base", str(tiny_model),
            "--methods", "longest", "--random-seeds", "2", "--no-plot", "--epochs", "1", "--batch-size", "2",
            "--cache-dir", str(cache), "-o", str(out), "-q"]  # fmt: skip
    cli(*args)
    r = json.loads((out / "results.json").read_text())
    assert [e["examples"] for e in r["more_evals"]] == [5]
    trials = {t["name"]: t for t in r["trials"]}
    rand = [trials["random-0"]["more_evals"][0]["loss"], trials["random-1"]["more_evals"][0]["loss"]]
    for row in r["rows"]:
        (e,) = row["more_evals"]
        if row["kind"] == "random-mean":
            assert e["eval_loss"] == pytest.approx(sum(rand) / 2, rel=1e-12)
            continue
        assert e["eval_loss"] == trials[row["name"]]["more_evals"][0]["loss"] != row["eval_loss"]
        assert e["delta_random"] == pytest.approx(e["eval_loss"] - sum(rand) / 2, rel=1e-9, abs=1e-12)
    assert (r["rows"][0]["more_evals"][0]["random_ci"] is not None) and "eval loss 2" in (
        out / "results.md"
    ).read_text()
    # the second set's loss is what `evaluate` gives the tuned model (kept here to check it)
    from instructsift.experiments.runner import ExperimentRunner
    from instructsift.train.finetune import FinetuneConfig

    config = FinetuneConfig(**_spec(rows, tiny_model, cache).finetune)
    runner = ExperimentRunner(read(pool), read(held), str(tiny_model), config, eval_dtype="float32",
                              keep_models=True, progress=False, more_evals=[read(second)], cache_dir=tmp_path / "c2")  # fmt: skip
    t = runner.trial("t", [0, 1, 2, 3])
    with runner.tuned_model([0, 1, 2, 3]) as folder:
        direct = evaluate(read(second).examples, str(folder), template=config.template, max_length=config.max_length,
                          dtype="float32", progress=False)  # fmt: skip
    assert t.more_evals[0]["loss"] == pytest.approx(direct.loss, rel=1e-6)
    assert t.more_evals[0]["counts"] == direct.per_example_tokens and t.eval_loss != t.more_evals[0]["loss"]


def test_a_method_short_of_the_budget_fails_before_any_training(rows, tiny_model: Path, tmp_path: Path) -> None:
    from instructsift.errors import UsageError
    from instructsift.experiments.compare import compare

    spec = _spec(rows, tiny_model, tmp_path / "cache", options={"*": {"model": str(tiny_model)}})
    with pytest.raises(UsageError, match=r"budget 4 of 24 examples: lima kept 0.*--allow-short"):
        compare(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "cache" / "experiments").exists() and not (tmp_path / "out").exists()


def test_cli_compare_checks_its_options_before_work(rows, tmp_path: Path) -> None:
    pool, held = rows
    judge = ["--judge-url", "http://127.0.0.1:1", "--judge-model", "m"]
    cases = [
        (["--budget", "five", "--eval", held], "--budget 'five' is not a number: a count (450) or a share"),
        (["--budget", "4,4", "--eval", held], "a budget is listed twice"),
        (["--budget", "4", "--budget-tokens", "100", "--eval", held], "one of --budget or --budget-tokens"),
        (["--budget", "1.5", "--eval", held], "--budget 1.5 is not a share between 0 and 1"),
        (["--budget", "4"], "needs --eval and one of --budget or --budget-tokens"),
        (["--budget", "4", "--eval", held, "--methods", "nosuch"], "unknown method 'nosuch'"),
        (["--budget", "4", "--eval", held, "--methods", "lima", "--set", "lima.ratio=0.1"], "--budget sets the size"),
        (["--budget", "4", "--eval", held, "--set", "oops"], "METHOD.KEY=VALUE"),
        (["--budget", "4", "--eval", held, "--methods", "lima,lima"], "names lima twice"),
        (["--budget", "4", "--eval", tmp_path / "nope.json"], "nope.json: no such file"),
        (["--budget", "4", "--eval", held, "--judge-model", "m"], "--judge-model: only with --judge-url"),
        (["--budget", "4", "--eval", held, "--max-new-tokens", "8"], "--max-new-tokens: only with --judge-url"),
        (["--budget", "4", "--eval", held, "--full", "--random-seeds", "0", *judge], "at least 1"),
    ]
    for args, message in cases:
        r = cli("compare", pool, "-o", tmp_path / "o", *args, "--no-plot", check=False)
        assert r.returncode == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    # with a compare recipe, what the recipe holds is not taken from the command line (it would be ignored)
    recipe = tmp_path / "compare.yaml"
    recipe.write_text(f"compare: {{data: {pool}, eval: {held}, budget: 4}}\n")
    for args in (["--epochs", "2"], ["--set", "lima.min_chars=0"], ["--full"], ["--allow-short"]):
        r = cli("compare", recipe, "-o", tmp_path / "o", *args, check=False)
        said = "with a compare recipe, give the fine-tuning settings"
        assert r.returncode == 2 and said in r.output, (args, r.output)


def test_trial_fit_step_in_a_recipe_names_the_trials_json(rows, tiny_model: Path, tmp_path: Path) -> None:
    """`fit: trial` fine-tunes on the rows its `on:` selectors keep and evaluates on the held-out file."""
    from instructsift.pipeline import run
    from instructsift.recipe import from_dict

    pool, held = rows
    ft = dict(lora=False, lr=5e-3, epochs=1, batch_size=4, max_length=256, dtype="float32")
    recipe = from_dict(
        {
            "input": str(pool),
            "cache_dir": str(tmp_path / "cache"),
            "steps": [
                {"score": "rules", "with": {"tokenizer": str(tiny_model)}},
                {
                    "fit": "trial",
                    "as": "t",
                    "on": [{"select": "top", "with": {"column": "response_chars", "k": 6}}],
                    "with": {"model": str(tiny_model), "eval": str(held), **ft},
                },
            ],
        }
    )
    result = run(recipe, progress=False, log=lambda _m: None)
    trial = json.loads(Path(result.artifacts["t"]).read_text())
    assert trial["n"] == 6 and trial["eval_loss"] > 0 and trial["settings"]["finetune"]["lr"] == 5e-3


def test_compare_recipe_round_trip_keeps_paths_and_settings(rows, tmp_path: Path) -> None:
    from instructsift.errors import UsageError
    from instructsift.experiments.compare_spec import load_spec, local_path, parse_sets, save_spec, spec_from

    pool, held = rows
    spec = spec_from(
        dict(
            data=str(pool),
            eval=str(held),
            methods=["lima", "cherry"],
            budget=0.05,
            full=True,
            options=parse_sets(["lima.min_chars=0", "model=gemma3-270m", "alpagasus.threshold=4"]),
            finetune={"epochs": 1.0},
            judge={"url": "http://127.0.0.1:8000/v1", "model": "m", "prompt": str(held), "max_new_tokens": 64},
            trials_dir=str(tmp_path / "trials"),
        )  # fmt: skip
    )
    assert spec.options == {"lima": {"min_chars": 0}, "*": {"model": "gemma3-270m"}, "alpagasus": {"threshold": 4}}
    target = tmp_path / "recipes" / "compare.yaml"
    target.parent.mkdir()
    save_spec(spec, target)
    loaded, base = load_spec(target)
    assert (
        local_path(base, loaded.data).resolve() == pool.resolve()
        and local_path(base, loaded.eval).resolve() == held.resolve()
    )
    assert local_path(base, loaded.trials_dir).resolve() == (tmp_path / "trials").resolve()
    assert loaded.trials_dir == "../trials"  # relative to the recipe's folder
    same = {"data", "eval", "judge", "trials_dir"}
    assert loaded.model_dump(exclude=same) == spec.model_dump(exclude=same)
    assert isinstance(loaded.budget, float)
    assert local_path(base, loaded.judge.prompt).resolve() == held.resolve() and loaded.judge.max_new_tokens == 64
    with pytest.raises(UsageError, match=r"judge\.url: Field required"):
        spec_from({"data": "d", "eval": "e", "budget": 4, "judge": {"model": "m"}})
    with pytest.raises(UsageError, match=r"judge\.maxnew: Extra inputs"):
        spec_from({"data": "d", "eval": "e", "budget": 4, "judge": {"url": "u", "model": "m", "maxnew": 3}})


# -- win rate vs random, judged by a real server ------------------------------------------------------------


def test_compare_win_rate_vs_random_from_a_real_judge_server(rows, tiny_model: Path, server, tmp_path: Path) -> None:
    """Each tuned model answers 3 held-out instructions; the judge rates them: every win rate is what the
    per-instruction verdicts in results.json give, the table prints it, and a rerun neither generates nor
    asks the judge again."""
    from instructsift.experiments.compare import compare

    url, model = server.url, server.model
    held = tmp_path / "held3.json"
    held.write_text(json.dumps(json.loads(rows[1].read_text())[:3]))
    # A 135M judge seldom starts its reply with the score under the AlpaGasus prompt; asked for one digit, it
    # mostly gives one within a few tokens (a custom prompt file, as --judge-prompt takes).
    prompt = tmp_path / "digit.txt"
    prompt.write_text(
        "Instruction: {instruction} {input}\nResponse: {response}\n\n"
        "How good is the response, on a scale of 0 to 5? Answer with a single digit."
    )
    judge = {"url": url, "model": model, "prompt": str(prompt), "max_tokens": 6, "timeout": 300, "retries": 1,
             "concurrency": 2, "max_new_tokens": 8, "batch_size": 2}  # fmt: skip
    spec = _spec(rows, tiny_model, tmp_path / "cache", eval=str(held), full=False, judge=judge, plot=False)
    r = compare(spec, tmp_path / "out", progress=False)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    j = saved["judge"]
    assert j["reference"] == "random-0" and "first random seed" in j["reference_note"]
    assert j["generated_now"] == 3 and j["requests_now"] == 9  # 3 models x 3 answers, each rated once
    assert set(j["trials"]) == {"lima", "random-1"}
    for name, t in j["trials"].items():
        vs = t["verdicts"]
        assert len(vs) == 3 and all(v["answer"] is not None and v["random_answer"] is not None for v in vs)
        for v in vs:  # a verdict is what the two ratings say, or missing with the reason
            if v["score"] is None or v["random_score"] is None:
                assert v["verdict"] is None and v["reason"]
            else:
                want = "win" if v["score"] > v["random_score"] else "tie" if v["score"] == v["random_score"] else "loss"
                assert v["verdict"] == want and 0 <= v["score"] <= 5
        rated = [v["verdict"] for v in vs if v["verdict"] is not None]
        want = (rated.count("win") + 0.5 * rated.count("tie")) / len(rated) if rated else None
        assert t["win_rate"] == want and t["n"] == len(rated)
        assert want is None or 0 <= want <= 1
        row = next(row for row in saved["rows"] if row["name"] == name)
        assert (row["win_rate"], row["win_n"]) == (want, len(rated))
    assert any(t["n"] for t in j["trials"].values())  # some pairs were rated: the arithmetic above was tested
    text = (tmp_path / "out" / "results.md").read_text()
    assert "win rate vs random |" in text and "first random seed" in text
    for cells, row in zip(_md_rows(text), saved["rows"], strict=True):
        shown = "-" if row.get("win_rate") is None else f"{row['win_rate']:.3f} (n={row['win_n']})"
        assert cells[-1] == shown
    assert r["judge"]["trials"].keys() == j["trials"].keys()
    # the tuned models were deleted once they had answered
    assert not list((tmp_path / "cache" / "experiments").glob("*/model"))

    again = compare(spec, tmp_path / "out", overwrite=True, progress=False)
    assert again["trained_now"] == 0 and again["judge"]["generated_now"] == 0 and again["judge"]["requests_now"] == 0
    assert {k: v["verdicts"] for k, v in again["judge"]["trials"].items()} == {
        k: v["verdicts"] for k, v in j["trials"].items()
    }


def test_compare_with_an_unreachable_judge_fails_before_fine_tuning(
    rows, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    from instructsift.experiments.compare import compare
    from instructsift.scoring.judge_client import JudgeServerError

    url = f"http://127.0.0.1:{free_port}/v1"  # nothing listens there
    spec = _spec(rows, tiny_model, tmp_path / "cache", judge={"url": url, "model": "m", "retries": 0}, plot=False)
    with pytest.raises(JudgeServerError, match=r"judge server http://127\.0\.0\.1:\d+/v1 does not answer"):
        compare(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "cache" / "experiments").exists() and not (tmp_path / "out").exists()
    pool, held = rows
    args = ["compare", str(pool), "--budget", "4", "--eval", str(held), "--base", str(tiny_model), "--no-plot"]
    args += [
        "-o",
        str(tmp_path / "o"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--judge-url",
        url,
        "--judge-model",
        "m",
    ]
    res = cli(*args, check=False)
    assert res.returncode == 2 and "does not answer" in res.output, res.output
    assert not (tmp_path / "cache" / "experiments").exists()


def test_compare_win_rate_and_tuning_flags_reach_the_recipe_by_field(rows, free_port: int, tmp_path: Path) -> None:
    """The win-rate options are `JudgeSpec`'s fields under the flags they declare: --gen-batch-size is the
    judge's `batch_size` (--batch-size the fine-tuning's), --judge-prompt its `prompt`; an option not given
    keeps the field's default, FinetuneConfig's for the fine-tuning (the saved recipe, written before the
    unreachable judge stops the run)."""
    import yaml

    pool, held = rows
    url, prompt, saved = f"http://127.0.0.1:{free_port}/v1", tmp_path / "prompt.txt", tmp_path / "r.yaml"
    prompt.write_text("Rate it: {instruction} {response}")
    args = ["compare", str(pool), "--budget", "4", "--eval", str(held), "--no-plot", "-o", str(tmp_path / "o"),
            "--cache-dir", str(tmp_path / "cache"), "--save-recipe", str(saved), "--judge-url", url,
            "--judge-model", "m", "--judge-retries", "0", "--gen-batch-size", "3", "--judge-prompt", str(prompt),
            "--max-new-tokens", "9", "--judge-dimension", "helpfulness", "--batch-size", "2", "--device", "cpu"]  # fmt: skip
    res = cli(*args, check=False)
    assert res.returncode == 2 and "does not answer" in res.output, res.output
    spec = yaml.safe_load(saved.read_text())["compare"]
    assert spec["judge"] == {"url": url, "model": "m", "retries": 0, "batch_size": 3, "prompt": "prompt.txt",
                             "max_new_tokens": 9, "dimension": "helpfulness"}  # fmt: skip
    assert spec["finetune"] == {"batch_size": 2, "device": "cpu"}  # the others: FinetuneConfig's defaults


def test_answers_of_a_trial_whose_model_was_deleted_are_those_of_a_fresh_run(
    rows, tiny_model: Path, tmp_path: Path
) -> None:
    """A trial run without a judge deletes its model; its answers then come from fine-tuning again with the
    same seed: the same greedy answers as answering right after the first fine-tune. Cached once made."""
    from instructsift.experiments.winrate import Answers

    subset = list(range(8))
    fresh = _runner(rows, tiny_model, tmp_path / "a")
    made = Answers(fresh, max_new_tokens=6, batch_size=3, progress=False)
    fresh.on_model = made.make
    (trial,) = fresh.run({"a": subset})
    assert made.generated == [trial.key] and len(made.cached(trial.key)) == 8

    late = _runner(rows, tiny_model, tmp_path / "b")
    (again,) = late.run({"a": subset})
    assert not list((tmp_path / "b" / "experiments").glob("*/model"))
    later = Answers(late, max_new_tokens=6, batch_size=3, progress=False)
    answers = later.of(again, subset)
    assert later.generated == [again.key] and not list((tmp_path / "b" / "experiments").glob("*/model"))
    assert answers == made.cached(trial.key)
    assert all(a["new_tokens"] <= 6 and isinstance(a["answer"], str) for a in answers)
    assert any(a["answer"] for a in answers), answers
    assert Answers(late, max_new_tokens=6, batch_size=3, progress=False).of(again, subset) == answers
    assert Answers(late, max_new_tokens=5, batch_size=3, progress=False).cached(again.key) is None


def test_instructmining_joins_compare_with_a_rule_fitted_here(
    rows, tiny_model: Path, shared_data: Path, tmp_path: Path
):
    """`compare --methods instructmining --set instructmining.rule=RULE.json --set
    instructmining.reward_model=standin:FILE`: a rule fitted here (on subsets of the pool whose losses follow a
    known rule) picks the budget's rows with the lowest predicted log loss, fine-tuned like every other pick."""
    import numpy as np

    from instructsift.data import read
    from instructsift.engine.local import score
    from instructsift.scoring.indicators import MTLD, Lengths
    from instructsift.scoring.reward_standin import RewardStandin
    from instructsift.train.instructmining import fit_rule

    pool, held = rows
    cache, names = tmp_path / "cache", ["output_tokens", "mtld", "reward_standin"]
    pref = tmp_path / "pref40.json"  # the first 40 DPO pairs: the stand-in's head trains in seconds
    pref.write_text(json.dumps(json.loads((shared_data / "preference" / "dpo_en_demo.json").read_text())[:40]))
    dataset = read(pool)
    scorers = [Lengths(model=str(tiny_model)), MTLD(), RewardStandin(str(pref))]
    table = score(dataset, scorers, cache_dir=cache, progress=False)
    X = np.array([[np.nan if r[n] is None else r[n] for n in names] for r in table.to_pylist()], dtype=float)
    rng = np.random.default_rng(0)
    subsets = [sorted(rng.choice(24, 8, replace=False).tolist()) for _ in range(10)]
    truth = np.array([1.0, 0.004, -0.01, -0.3])
    losses = [float(np.exp(truth[0] + np.nanmean(X[s], axis=0) @ truth[1:])) for s in subsets]
    rule = fit_rule(table, subsets, losses, names)
    assert [rule.coef_[n] for n in names] == pytest.approx(truth[1:].tolist(), abs=1e-6)
    rule.save(tmp_path / "rule.json")
    pred = rule.predict(X)
    ok = np.flatnonzero(~np.isnan(pred))
    expect = {dataset.examples[i].id for i in ok[np.argsort(pred[ok], kind="stable")[:4]]}

    out = tmp_path / "out"
    args = ["compare", pool, "-o", out, "--eval", held, "--budget", 4, "--methods", "instructmining", "--random-seeds",
            1, "--base", tiny_model, "--set", f"instructmining.rule={tmp_path / 'rule.json'}", "--set",
            f"instructmining.reward_model=standin:{pref}", "--set", f"model={tiny_model}", "--epochs", 1,
            "--batch-size", 2, "--max-length", 256, "--lr", 5e-3, "--cache-dir", cache, "--no-plot", "-q"]  # fmt: skip
    cli(*args)
    res = json.loads((out / "results.json").read_text())
    assert set(res["selections"]["instructmining"]["ids"]) == expect
    assert [row["name"] for row in res["rows"]][:2] == ["instructmining", "random-0"]
    assert all(t["eval_loss"] > 0 for t in res["trials"]) and res["trained_now"] == 2


def test_scar_joins_compare_and_picks_the_rankers_top(
    rows, tiny_model: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    """`compare --methods scar` with a ranker folder: the pick is the budget's rows that the ranker scores
    highest (scored here with the ranker directly), fine-tuned like every other pick."""
    import torch

    from instructsift.data import read
    from instructsift.experiments.compare import compare
    from instructsift.models.scar import build_ranker, load_ranker, save_ranker
    from instructsift.scoring.scar import score_pairs

    torch.manual_seed(0)
    model, tok = build_ranker(tiny_encoder, linear_dim=16)
    model.eval()
    ranker = save_ranker(model, tok, tmp_path / "ranker", "tiny")

    pool, _ = rows
    records = json.loads(pool.read_text())
    pairs = [(r["instruction"] + (f"\n\n{r['input']}" if r["input"] else ""), r["output"]) for r in records]
    scores = score_pairs(load_ranker(ranker), pairs)
    ids = [e.id for e in read(pool).examples]

    spec = _spec(rows, tiny_model, tmp_path / "cache", methods=["scar"], random_seeds=1, full=False,
                 options={"scar": {"ranker": str(ranker), "device": "cpu"}}, plot=False)  # fmt: skip
    res = compare(spec, tmp_path / "out", progress=False)
    # the 4 best by the ranker: every pick scores at least as high as every row left out. The scorer batches
    # other rows together than score_pairs did here, so a near-tie at the 4th place may fall either way
    # (tests/tolerances.py); a wrong pick is off by far more.
    picked = set(res["selections"]["scar"]["ids"])
    assert len(picked) == 4 and picked <= set(ids)
    inside = [scores[i] for i in range(len(ids)) if ids[i] in picked]
    outside = [scores[i] for i in range(len(ids)) if ids[i] not in picked]
    assert min(inside) >= max(outside) - (REL * abs(max(outside)) + OUTPUT_ABS), (inside, outside)
    assert [t["name"] for t in res["trials"]] == ["scar", "random-0"] and all(t["eval_loss"] > 0 for t in res["trials"])
