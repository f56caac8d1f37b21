"""`instructsift design` and `instructsift mine` end to end: a tiny design on real AlpacaEval answers, a tiny
random Llama fine-tuned through the experiment runner, the rule, the size search, the curve; a rerun
trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import Run, cli


def _invoke(*args: object) -> Run:
    return cli(*args, check=False)


@pytest.fixture(scope="module")
def design(shared_data: Path, tiny_bpe_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """6 subsets of 6 rows from a pool of 5 x 6 AlpacaEval answers, 4 held out; conftest's tiny BPE Llama."""
    folder = tmp_path_factory.mktemp("mine") / "design"
    answers = sorted((shared_data / "alpaca_eval").glob("*.json"))  # gpt4.json names the source gpt4
    r = _invoke("design", *answers, "--eval-source", "gpt4", "-o", folder, "--subsets", 6, "--size", 6,
                "--held-out", 4, "--per-source", 6, "--seed", 1)  # fmt: skip
    assert r.returncode == 0, r.output
    pool = json.loads((folder / "pool.json").read_text())
    held = json.loads((folder / "eval.json").read_text())
    assert len(pool) == 30 and len(held) == 4
    # the five generators keep the same six instructions
    by_gen = {}
    for row in pool:
        by_gen.setdefault(row["source"], set()).add(row["instruction"])
    assert len(by_gen) == 5 and len({frozenset(v) for v in by_gen.values()}) == 1
    return folder, tiny_bpe_llama


def _mine(design: Path, model: Path, out: Path, cache: Path, *more: object) -> Run:
    return _invoke("mine", design, "-o", out, "--base", model, "--model", model, "--indicators",
                   "output_tokens,mtld,ppl", "--epochs", 1, "--batch-size", 4, "--max-length", 256, "--lr", 5e-3,
                   "--full-finetune", "--min-k", 4, "--max-k", 30, "--trials", 3, "--sweep", 3, "--cache-dir", cache,
                   "--quiet", *more)  # fmt: skip


def test_mine_options_are_generated_from_its_settings() -> None:
    """Every field of `MineSettings` is a `mine` option with its description as help (issue 23); its defaults
    are mine_design's arguments."""
    from instructsift.experiments.mine_run import MineSettings

    out = " ".join(cli("mine", "--help", width=1000).output.split())
    for name, field in MineSettings.model_fields.items():
        assert f"--{name.replace('_', '-')}" in out and " ".join(field.description.split()) in out, name
    given = MineSettings.model_validate({"indicators": "ppl, mtld", "device": "cpu", "full_finetune": True})
    args = given.arguments()
    assert args["indicators"] == ["ppl", "mtld"] and not args["config"].lora and args["config"].device == "cpu"
    assert args["options"] == {"model": "embedded", "max_length": 512, "device": "cpu"}
    assert MineSettings().arguments()["options"] == {"model": "embedded", "max_length": 512}
    assert (args["low"], args["high"], args["trials"], args["sweep_points"]) == (10, None, 20, 8)


def test_mine_writes_the_rule_and_curve_and_a_rerun_trains_nothing(design, tmp_path: Path) -> None:
    folder, model = design
    out, cache = tmp_path / "mining", tmp_path / "cache"
    r = _mine(folder, model, out, cache)
    assert r.returncode == 0, r.output
    for name in ("rule.json", "summary.json", "curve.png", "search.jsonl", "experiments.json", "settings.json"):
        assert (out / name).is_file(), name
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    rule = json.loads((out / "rule.json").read_text())
    assert summary["rule"] == rule and rule["n_subsets"] == 6
    assert set(rule["coef"]) | set(rule["dropped"]) == {"output_tokens", "mtld", "ppl"}
    lines = (out / "search.jsonl").read_text().splitlines()[1:]
    ks = {json.loads(x)["k"] for x in lines}
    assert len({json.loads(x)["k"] for x in lines if json.loads(x)["how"] == "search"}) == 3
    assert summary["best_k"] in ks and 4 <= summary["best_k"] <= 30
    # each distinct row set fine-tuned exactly once: the 6 design subsets and the top k of the rule's ranking
    # for every k tried (a top k equal to a design subset is one trial)
    import pyarrow.parquet as pq

    from instructsift.experiments.mining import ranking
    from instructsift.selection.instructmining import InstructMiningRule

    order = ranking(pq.read_table(out / "pool.scores.parquet"), InstructMiningRule.load(out / "rule.json"), print)
    subsets = [s["rows"] for s in json.loads((out / "experiments.json").read_text())["subsets"]]
    distinct = {tuple(sorted(s)) for s in subsets} | {tuple(sorted(order[:k])) for k in ks}
    assert summary["trained_now"] == len(distinct)
    losses = [s["loss"] for s in json.loads((out / "experiments.json").read_text())["subsets"]]
    assert len(losses) == 6 and all(x > 0 for x in losses)
    assert f"best k {summary['best_k']}" in r.output and "leave-one-out R²" in r.output
    # ppl is a named column of the pool's scores: exp(loss_cond) of the IFD step, on every real row
    import math

    scored = pq.read_table(out / "pool.scores.parquet").to_pylist()
    with_loss = [row for row in scored if row["loss_cond"] is not None]
    assert len(scored) == 30 and len(with_loss) >= 20
    for row in scored:
        if row["loss_cond"] is None:  # no loss (its reason is in `reason`): no ppl either
            assert row["ppl"] is None and row["reason"]
        else:
            assert row["ppl"] == pytest.approx(math.exp(row["loss_cond"]), rel=1e-12)

    again = _mine(folder, model, out, cache)
    assert again.returncode == 0, again.output
    second = json.loads((out / "summary.json").read_text())
    assert second["trained_now"] == 0 and second["best_k"] == summary["best_k"] and second["rule"] == rule
    assert (out / "search.jsonl").read_text().splitlines()[1:] == lines

    other = _mine(folder, model, out, cache, "--seed", 7)
    assert other.returncode == 2 and "other settings" in other.output and "runner" in other.output


def test_mine_refuses_a_bad_design_naming_file_and_field(design, tmp_path: Path) -> None:
    folder, model = design
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("pool.json", "eval.json"):
        (bad / name).write_text((folder / name).read_text())
    spec = json.loads((folder / "design.json").read_text())
    spec["subsets"][2]["rows"] = [0, "x"]
    (bad / "design.json").write_text(json.dumps(spec))
    r = _mine(bad, model, tmp_path / "o", tmp_path / "c")
    assert r.returncode == 2 and "design.json" in r.output and "subsets[2].rows" in r.output
    spec["subsets"][2]["rows"] = [0, 99]
    (bad / "design.json").write_text(json.dumps(spec))
    r = _mine(bad, model, tmp_path / "o", tmp_path / "c")
    assert r.returncode == 2 and "position 99 is outside the pool" in r.output
    r = _mine(tmp_path / "nowhere", model, tmp_path / "o", tmp_path / "c")
    assert r.returncode == 2 and "no such design file" in r.output
    # a held-out instruction in the pool (another case and spacing, another answer) is refused, naming the rows
    held = json.loads((folder / "eval.json").read_text())
    pool = json.loads((folder / "pool.json").read_text())
    pool[5] = {**pool[5], "instruction": "  " + held[1]["instruction"].upper().replace(" ", "\n "), "input": ""}
    spec = json.loads((folder / "design.json").read_text())
    (bad / "pool.json").write_text(json.dumps(pool))
    (bad / "design.json").write_text(json.dumps(spec))
    r = _mine(bad, model, tmp_path / "o", tmp_path / "c")
    assert r.returncode == 2 and "pool.json: 1 pool rows have the instruction of a held-out row" in r.output
    assert "pool row 5 = eval row 1" in r.output
    r = _mine(folder, model, tmp_path / "o", tmp_path / "c", "--reward-model", "standin:x.json")
    assert r.returncode == 2 and "reward_model: not used by the indicators (output_tokens, mtld, ppl)" in r.output
    assert not (tmp_path / "o").exists()
    # mine_design's names for them (`low=`, `high=`, `out=`) read as the command's flags
    r = _mine(folder, model, tmp_path / "o", tmp_path / "c", "--min-k", 40)
    assert r.returncode == 2 and "the subset sizes need --min-k 40 below --max-k 30, both from 1 to 30" in r.output
    (tmp_path / "file").write_text("x")
    r = _mine(folder, model, tmp_path / "file", tmp_path / "c")
    assert r.returncode == 2 and f"--output {tmp_path / 'file'}: is a file, but this output is a folder" in r.output
