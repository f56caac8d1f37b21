"""The registry, recipes and the pipeline that runs them: errors that name the step, option, line and key;
chained recipes equal the selectors applied by hand; namespaces; every row accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import instructsift as isf
from instructsift import recipe as recipes
from instructsift import registry
from instructsift.errors import UsageError
from instructsift.pipeline import run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"


def _quiet(_m: str) -> None:
    pass


# -- registry ----------------------------------------------------------------------------------------
def test_registry_knows_every_step_and_method_by_name() -> None:
    assert {"ifd", "embed", "judge", "rules", "language", "minhash"} <= set(registry.names("score"))
    assert {"threshold", "top", "kcenter", "dedup", "diverse_top", "stratified"} <= set(registry.names("select"))
    assert {"cherry", "superfiltering", "superfiltering-d", "alpagasus", "lima", "ltd"} <= set(registry.names("method"))
    assert registry.get("method", "ifd").name == "cherry"  # an alias
    assert isf.Top is registry.get("select", "top").target  # the Python API comes from the registry


def test_unknown_step_and_unknown_option_are_errors_naming_what_exists() -> None:
    with pytest.raises(UsageError, match=r"unknown selector 'topk' \(known: .*top"):
        registry.get("select", "topk")
    with pytest.raises(UsageError, match=r"selector 'top' does not take 'colum' \(it takes: column, ratio, k"):
        registry.get("select", "top").build({"colum": "ifd", "ratio": 0.1})
    with pytest.raises(UsageError, match=r"selector 'top', option 'ratio'"):
        registry.get("select", "top").build({"column": "ifd", "ratio": "a tenth"})


def test_a_method_refuses_options_it_does_not_take() -> None:
    with pytest.raises(UsageError, match=r"method 'ltd' does not take 'max_length', 'template'"):
        isf.get_method("ltd").expand({"ratio": 0.1, "max_length": 99, "template": "alpaca"})
    with pytest.raises(UsageError, match=r"method 'cherry' does not take 'per_category', 'rules'"):
        isf.get_method("cherry").selectors(ratio=0.1, per_category=5, rules="bogus")
    with pytest.raises(UsageError, match="exactly one of ratio= or top="):
        isf.get_method("cherry").expand({})
    with pytest.raises(UsageError, match="only apply with rank_by=.judge."):
        isf.get_method("lima").expand({"judge_url": "http://127.0.0.1:1/v1"})


# -- recipe errors name the line and key -------------------------------------------------------------
def _recipe(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("input: d.json\nouput: o.json\nsteps:\n  - select: top\n    with: {column: x, k: 1}\n", 2, "unknown key"),
        ("input: d.json\nsteps:\n  - select: top\n    with:\n      column: x\n      kk: 3\n", 3, "does not take 'kk'"),
        ("input: d.json\nsteps:\n  - score: ifd\n  - selekt: top\n", 4, "names exactly one of"),
        ("input: d.json\nsteps:\n  - method: cherry\n    with: {ratio: 2}\n", 3, "ratio"),
        ("input: d.json\nsteps:\n  - score: ifd\n    with: {method: cherry}\n    as: 3x\n", 5, "namespace"),
        ("input: d.json\nsteps: [\n", 3, "not valid YAML"),
        ("input: d.json\nsteps:\n  - fit: finetune\n", 3, "needs `as: NAME`"),
    ],
)
def test_recipe_errors_name_the_file_line_and_key(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = _recipe(tmp_path, text)
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(path)
    assert str(path) in str(e.value) and f"line {line}" in str(e.value) and message in str(e.value)


def test_a_column_no_step_writes_is_an_error_before_any_work(tmp_path: Path) -> None:
    """`select: top, with: {column: ifd_pp}` fails when the recipe is read, naming the line and the
    columns the steps before it write: no model is loaded, no score cache made."""
    text = (
        f"input: {SAMPLE}\ncache_dir: cache\nsteps:\n  - score: ifd\n    with: {{method: superfiltering}}\n"
        "  - select: top\n    with: {column: ifd_pp, k: 3}\n"
    )
    path = _recipe(tmp_path, text)
    with pytest.raises(recipes.RecipeError) as e:
        run(path, progress=False, log=_quiet)
    message = str(e.value)
    assert f"{path}, line 6" in message and "'ifd_pp'" in message, message
    assert "ifd_ppl" in message and "loss_cond" in message  # the columns there are (ifd's declaration)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("steps", "line"),
    [
        # a namespaced scorer's columns are NS.column; a selector without `as` sees them so
        ("  - score: rules\n    as: r\n  - select: top\n    with: {column: response_tokens, k: 3}\n", 5),
        # a threshold's condition names columns too
        ("  - score: rules\n  - select: threshold\n    with: {where: response_chars >= 4 and respons_tokens > 1}\n", 4),
        # token_budget counts the trained_tokens scorer's column (a ColumnRef): no such scorer before it
        ("  - score: rules\n  - select: token_budget\n    with: {tokens: 100}\n", 4),
        # a fit step's `on` selectors are checked as well
        (
            '  - score: rules\n  - fit: finetune\n    as: ft\n    "on":\n      - select: top\n'
            "        with: {column: nope, k: 3}\n",
            7,
        ),
    ],
)
def test_columns_are_checked_through_namespaces_conditions_and_fit_steps(tmp_path: Path, steps: str, line: int) -> None:
    path = _recipe(tmp_path, f"input: d.json\nsteps:\n{steps}")
    with pytest.raises(recipes.RecipeError, match=rf"line {line}, .* reads the column"):
        recipes.load(path)


def test_columns_a_step_writes_under_a_namespace_or_adds_are_known() -> None:
    steps = [
        {"score": "rules", "as": "r"},
        {"select": "top", "as": "r", "with": {"column": "response_tokens", "k": 5}},  # r.response_tokens as seen
        {"select": "top", "with": {"column": "r.response_tokens", "k": 4}},
        {"score": "instruction_loss"},
        {"select": "indicators", "with": {"names": ["ppl"]}},  # adds ppl
        {"select": "threshold", "with": {"where": "ppl > 0"}},
    ]
    recipes.from_dict({"input": "d.json", "steps": steps})
    for f in sorted((ROOT / "examples" / "recipes").glob("*.yaml")):  # every example recipe still loads
        recipes.load(f)


def test_a_method_step_expands_into_its_papers_steps() -> None:
    r = recipes.from_dict({"input": "d.json", "steps": [{"method": "superfiltering", "with": {"top": 3}}]})
    assert [(s.kind, s.name) for s in r.steps] == [("score", "ifd"), ("select", "threshold"), ("select", "top")]
    assert r.steps[2].options == {"column": "ifd_ppl", "k": 3, "of": "all"}


# -- running -----------------------------------------------------------------------------------------
CHEAP = [
    {"score": "rules"},
    {"score": "minhash"},
    {"select": "threshold", "with": {"where": "response_chars >= 40"}},
    {"select": "rule_filter", "with": {"rules": ["first_person", "refusal"]}},
    {"select": "dedup"},
    {"select": "top", "with": {"column": "response_tokens", "k": 10}},
]


def test_chained_recipe_equals_the_selectors_applied_by_hand(tmp_path: Path) -> None:
    result = run(recipes.from_dict({"input": str(SAMPLE), "steps": CHEAP}), progress=False, log=_quiet)
    ds = isf.read(SAMPLE)
    table = isf.score(ds, [isf.Rules(), isf.MinHashSignature()], progress=False)
    by_hand = isf.select(
        ds,
        table,
        isf.Threshold("response_chars >= 40"),
        isf.RuleFilter(["first_person", "refusal"]),
        isf.Dedup(),
        isf.Top("response_tokens", k=10),
    )
    assert result.picked.rows == by_hand.rows and len(by_hand.rows) == 10
    assert result.picked.selection.codes == by_hand.selection.codes
    assert result.table.select(table.column_names).equals(table)


def test_dropped_kept_and_rejects_files_hold_every_input_row(tmp_path: Path) -> None:
    rows = json.loads(SAMPLE.read_text())
    rows[3] = {"instruction": "no answer here"}  # rejected under skip
    rows[5]["output"] = 7  # rejected: not a string
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows, indent=2))
    out = tmp_path / "out"
    r = recipes.from_dict(
        {
            "input": str(data),
            "on_error": "skip",
            "output": str(out / "kept.json"),
            "dropped": str(out / "dropped.jsonl"),
            "steps": CHEAP,
        }
    )
    result = run(r, progress=False, log=_quiet)
    kept = json.loads((out / "kept.json").read_text())
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text().splitlines()]
    rejects = [json.loads(x) for x in (out / "kept.json.rejects.jsonl").read_text().splitlines()]
    assert len(kept) + len(dropped) + len(rejects) == len(rows) == result.summary()["read"]
    rows_seen = sorted([d["row"] for d in dropped] + [j["row"] for j in rejects] + result.picked.rows)
    assert rows_seen == list(range(len(rows)))
    for d in dropped:  # a reason is data: the step, a code and a detail, and the user's own record
        assert d["step"] in {"threshold", "rule_filter", "dedup", "top"} and d["code"]
        assert d["record"] == rows[d["row"]]
    assert {"fails response_chars >= 40", "not in the top 10 by response_tokens"} <= {d["code"] for d in dropped}


def test_a_scorer_after_a_selector_scores_only_the_rows_still_kept(tmp_path: Path) -> None:
    steps = [
        {"score": "rules"},
        {"select": "threshold", "with": {"where": "response_chars >= 100"}},
        {"score": "language"},
    ]
    result = run(recipes.from_dict({"input": str(SAMPLE), "steps": steps}), progress=False, log=_quiet)
    keep = result.picked.selection.keep
    lang = result.table.column("lang").to_pylist()
    reason = result.table.column("lang_reason").to_pylist() if "lang_reason" in result.table.column_names else None
    assert 0 < keep.sum() < len(keep)
    assert all((v is None) for v, k in zip(lang, keep, strict=True) if not k)
    assert any(v is not None for v, k in zip(lang, keep, strict=True) if k)
    if reason is not None:
        assert all(r == "not scored: dropped before this step" for r, k in zip(reason, keep, strict=True) if not k)


def test_namespaces_let_the_same_scorer_run_twice_and_a_selector_read_one(tmp_path: Path) -> None:
    clash = [{"score": "rules"}, {"score": "rules", "with": {"tokenizer": None}}]
    with pytest.raises(UsageError, match="already in the score table: give one of the two scorers a namespace"):
        run(recipes.from_dict({"input": str(SAMPLE), "steps": clash}), progress=False, log=_quiet)
    steps = [
        {"score": "rules", "as": "a"},
        {"score": "rules", "as": "b", "with": {"tokenizer": None}},
        {"select": "top", "as": "a", "with": {"column": "response_tokens", "k": 5}},
    ]
    result = run(recipes.from_dict({"input": str(SAMPLE), "steps": steps}), progress=False, log=_quiet)
    cols = result.table.column_names
    assert "a.response_tokens" in cols and "b.response_chars" in cols and "response_tokens" not in cols
    assert result.summary()["kept"] == 5
    assert result.picked.selection.reason_counts() == {"not in the top 5 by response_tokens": 27}
    assert {s for s in result.picked.selection.steps if s} == {"a/top"}


@pytest.mark.slow
def test_cherry_and_superfiltering_ifd_coexist_in_one_recipe(tmp_path: Path) -> None:
    rows = json.loads(SAMPLE.read_text())[:10]
    data = tmp_path / "ten.json"
    data.write_text(json.dumps(rows))
    steps = [
        {"method": "superfiltering", "as": "sf", "with": {"ratio": 0.8}},
        {"method": "cherry", "as": "cherry", "with": {"ratio": 0.5}},
    ]
    result = run(recipes.from_dict({"input": str(data), "steps": steps}), progress=False, log=_quiet)
    t = result.table
    assert t.column("sf.ifd").to_pylist() != t.column("cherry.ifd").to_pylist()  # different templates, scores
    assert result.summary()["kept"] >= 1


def test_save_then_load_gives_the_same_steps_and_paths(tmp_path: Path) -> None:
    r = recipes.from_method("lima", {"per_category": 2, "min_chars": 10}, input=str(SAMPLE), output="o.json")
    target = tmp_path / "sub" / "saved.yaml"
    r.save(target, comment="from a test")
    again = recipes.load(target)
    assert [s.as_dict() for s in again.steps] == [s.as_dict() for s in r.steps]
    assert again.path("input") == SAMPLE.resolve()
    assert target.read_text().startswith("# from a test\n")


def test_score_table_of_a_run_is_written(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    r = recipes.from_dict({"input": str(SAMPLE), "scores": str(out), "steps": CHEAP[:2]})
    run(r, progress=False, log=_quiet)
    table = pq.read_table(out)
    assert table.num_rows == 32 and {"row", "id", "response_chars", "minhash"} <= set(table.column_names)


def test_save_recipe_then_run_reproduces_a_select_byte_for_byte(tmp_path: Path) -> None:
    from helpers import cli

    first, again = tmp_path / "a", tmp_path / "b"
    cli("select", SAMPLE, "-m", "lima", "--min-chars", "30", "--top", "9", "-q", "-o", first / "kept.json",
        "--dropped", first / "dropped.jsonl", "--save-recipe", tmp_path / "run.yaml")  # fmt: skip
    cli("run", tmp_path / "run.yaml", "-q", "-o", again / "kept.json", "--dropped", again / "dropped.jsonl")
    assert (first / "kept.json").read_bytes() == (again / "kept.json").read_bytes()
    assert (first / "dropped.jsonl").read_bytes() == (again / "dropped.jsonl").read_bytes()
    assert len(json.loads((first / "kept.json").read_text())) == 9
    bad = cli("select", SAMPLE, "-m", "ltd", "--top", "3", "--template", "alpaca", "-o", tmp_path / "x.json",
              check=False)  # fmt: skip
    assert bad.returncode == 2 and "method 'ltd' does not take 'template'" in bad.stderr


def test_step_paths_are_relative_to_the_recipe_file_and_saved_portably(tmp_path: Path, monkeypatch) -> None:
    """A step's file options (a fit step's quads, a judge prompt) are relative to the recipe's folder, not
    the current one; a model option is a path when it names something there (or starts with ./), else a
    name such as embedded or a hub id. Saved elsewhere, the recipe still names the same files."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "recipes" / "rk").mkdir()  # a ranker folder beside the recipe
    (tmp_path / "data" / "q.jsonl").write_text('{"instruction": "a", "human": "b", "direct": "c"}\n')
    (tmp_path / "recipes" / "prompt.txt").write_text("Rate {instruction} / {response}.")
    path = tmp_path / "recipes" / "r.yaml"
    path.write_text(f"""
input: {SAMPLE}
steps:
  - fit: scar_ranker
    as: fresh
    with: {{quads: ../data/q.jsonl, encoder: embedded}}
  - score: scar
    with: {{ranker: rk}}
  - score: scar
    as: released
    with: {{ranker: lizhuang144/scar-gte-base}}
  - score: judge
    with: {{judge_prompt: prompt.txt, model: ./not-there}}
  - score: scar
    as: trained
    with: {{ranker: "@fresh"}}
  - select: top
    with: {{column: trained.scar, k: 2}}
""")
    monkeypatch.chdir(tmp_path / "data")  # the current folder plays no part
    r = recipes.load(path)
    fit, mine, released, judge, trained = (s.options for s in r.steps[:5])
    assert fit == {"quads": str(tmp_path / "data" / "q.jsonl"), "encoder": "embedded"}
    assert mine == {"ranker": str(tmp_path / "recipes" / "rk")} and released["ranker"] == "lizhuang144/scar-gte-base"
    assert judge == {
        "judge_prompt": str(tmp_path / "recipes" / "prompt.txt"),
        "model": str(tmp_path / "recipes" / "not-there"),
    }
    assert trained == {"ranker": "@fresh"}
    target = tmp_path / "elsewhere" / "copy.yaml"
    r.save(target)
    text = target.read_text()
    assert "quads: ../data/q.jsonl" in text and "ranker: ../recipes/rk" in text and "embedded" in text
    again = recipes.load(target)
    assert [s.options for s in again.steps] == [s.options for s in r.steps]
    # `select --method M` (no recipe file): relative to the current folder, as any command-line path
    monkeypatch.chdir(tmp_path / "recipes")
    m = recipes.from_method("scar", {"ranker": "rk", "top": 2}, input=str(SAMPLE))
    assert m.steps[0].options["ranker"] == str(tmp_path / "recipes" / "rk")
