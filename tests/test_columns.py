"""What every scorer declares about its columns (`Scorer.columns`), and the accounting that reads it:
a row missing a score is unscored whatever the scorer's column names look like, and a run where nothing
could be scored ends with exit 1. Every registered scorer is checked, so a new one is too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import cli

from instructsift import registry
from instructsift.accounting import missing_by_scorer, unscored_mask
from instructsift.scoring.base import score_reasons
from instructsift.scoring.table import reason_columns, scorer_configs, with_configs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"
NAMES = registry.names("score")


def _options(name: str, tmp_path: Path) -> dict[str, Any]:
    """The least each scorer needs to be built (nothing is loaded)."""
    if name == "reward_standin":
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text(json.dumps({"chosen": "a", "rejected": "b"}) + "\n")
        return {"preference": str(pairs)}
    return {"unieval": {"model": "x"}, "reward": {"model": "x"}, "scar": {"ranker": "x"}}.get(name, {})


def _build(name: str, tmp_path: Path) -> Any:
    scorer = registry.get("score", name).build(_options(name, tmp_path))
    scorer.cache_key = lambda: "test"  # no model is loaded for the configuration
    scorer.describe = lambda: f"{name} (test)"
    return scorer


def _value(t: pa.DataType) -> Any:
    """Some valid value of an Arrow type."""
    if pa.types.is_fixed_size_list(t):
        return [_value(t.value_type)] * t.list_size
    if pa.types.is_list(t):
        return [_value(t.value_type)]
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_integer(t):
        return 1
    if pa.types.is_floating(t):
        return 0.5
    return "x"


def _row(scorer: Any, missing: set[str], reason: str | None) -> dict[str, Any]:
    """A row of the scorer's columns: the `missing` ones null, every reason column set to `reason`."""
    reasons = set(score_reasons(scorer.columns).values())
    out = {}
    for f in scorer.schema:
        out[f.name] = reason if f.name in reasons else (None if f.name in missing else _value(f.type))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_scorer_declares_every_column_it_writes(name, tmp_path):
    scorer = _build(name, tmp_path)
    assert list(scorer.columns) == list(scorer.schema.names), "the declaration names each column it writes"
    for column, reason in scorer.columns.items():
        assert reason is None or scorer.columns.get(reason, "absent") is None, (column, reason)


@pytest.mark.parametrize("name", NAMES)
def test_a_row_missing_any_declared_score_is_unscored(name, tmp_path):
    """For each score column: null (with no reason) or a reason alone makes the row unscored; the same
    from the table's metadata and, without it (JSON Lines), from the class-level declarations."""
    scorer = _build(name, tmp_path)
    scores = score_reasons(scorer.columns)
    if not scores:  # lengths, rules, minhash, language: a null there is a value, not a missing score
        assert all(v is None for v in scorer.columns.values())
        return
    rows = [_row(scorer, set(), None), _row(scorer, set(), "could not: test")]
    rows += [_row(scorer, {column}, None) for column in scores]
    table = pa.Table.from_pylist(rows, schema=scorer.schema)
    table = with_configs(table, scorer_configs([scorer]))
    assert reason_columns(table) == scores
    assert unscored_mask(table) == [False] + [True] * (len(rows) - 1)
    assert unscored_mask(table.replace_schema_metadata(None)) == unscored_mask(table)
    ((label, given, why),) = missing_by_scorer(table)
    assert given == len(rows) and sum(why.values()) == len(rows) - 1


def test_namespaced_columns_follow_their_declaration(tmp_path):
    scorer = _build("deita", tmp_path)
    table = pa.Table.from_pylist([_row(scorer, set(), "x: y")], schema=scorer.schema)
    table = table.rename_columns([f"d.{n}" for n in table.column_names])
    table = with_configs(table, [{**scorer_configs([scorer])[0], "namespace": "d"}])
    assert reason_columns(table)["d.deita_score"] == "d.deita_reason"
    assert unscored_mask(table) == [True]


@pytest.mark.parametrize(
    "name", [n for n in NAMES if n not in ("lengths", "rules", "minhash", "language", "trained_tokens")]
)
def test_a_run_where_nothing_could_be_scored_exits_1(name, tmp_path, monkeypatch):
    """The scorer (its real class and declaration, through the real engine) gives every row a missing
    score: the CLI says so and exits 1, whatever its columns are called."""
    scorer = _build(name, tmp_path)
    cls = type(scorer)

    def score(self, examples, skip=frozenset(), advance=None, **_: Any):
        yield [(ex.content_hash, _row(self, set(score_reasons(self.columns)), "test: cannot")) for ex in examples]

    monkeypatch.setattr(cls, "score", score)
    monkeypatch.setattr(cls, "cache_key", lambda self: "test")
    monkeypatch.setattr(cls, "describe", lambda self: "test")
    recipe = tmp_path / "recipe.yaml"
    steps = [{"score": name, "with": _options(name, tmp_path)}]
    recipe.write_text(
        json.dumps(
            {
                "input": str(SAMPLE),
                "scores": str(tmp_path / "s.parquet"),
                "cache_dir": str(tmp_path / "c"),
                "steps": steps,
            }
        )
    )
    res = cli("run", recipe, "-q", check=False)
    assert res.returncode == 1, res.output
    assert "no row could be scored" in res.output and "test" in res.output


def test_a_scorer_after_a_selector_counts_only_the_rows_it_was_given(tmp_path):
    """The demo printed `embedding: 16 scored, 16 missing (not scored: 16)` for the 16 rows an earlier step
    had dropped: those were not asked, not missing."""
    steps = [
        {"score": "rules", "with": {"tokenizer": None}},
        {"select": "top", "with": {"column": "response_chars", "k": 3}},
        {"score": "mtld"},
    ]
    recipe = tmp_path / "recipe.yaml"
    out = {"input": str(SAMPLE), "output": str(tmp_path / "out.json"), "cache_dir": str(tmp_path / "c")}
    recipe.write_text(json.dumps({**out, "steps": steps}))
    res = cli("run", recipe)  # -q would hide the summary
    assert "mtld: 3 scored, 0 missing; 29 dropped before this step" in res.output, res.output
    assert "read 32 · kept 3" in res.output


# -- a score table for a method holds every column its rule reads -----------------------------------------
def _written(steps: list[dict[str, Any]], tmp_path: Path) -> set[str]:
    """The columns a method's expanded steps write: each scorer's declaration and each column-only
    selector's names."""
    out: set[str] = set()
    for s in steps:
        if "score" in s:
            out |= set(registry.get("score", s["score"]).build(s["with"]).columns)
        elif "select" in s and s["select"] == "indicators":
            out |= set(s["with"]["names"])
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"rule": "paper", "reward_model": "x", "reward_format": "pair"}, {"reward_model": "x"}],
)
def test_instructmining_scores_every_indicator_its_rule_reads(options, tmp_path):
    """`score --method instructmining` wrote `mtld` but not `knn6` or `ppl` (only `mine` wrote them)."""
    from instructsift.methods.instructmining import Params, indicators_for

    method = registry.get("method", "instructmining").target
    steps = method.expand(options, score_only=True)
    want = set(indicators_for(Params.model_validate(options)))
    assert "knn6" in want and ("ppl" in want) == ("rule" not in options)
    assert want <= _written(steps, tmp_path), steps


def test_the_indicators_step_adds_ppl_and_knn_among_the_kept_rows():
    import numpy as np

    from instructsift.selection import Selection
    from instructsift.selection.instructmining import Indicators, knn_distance

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(9, 4)).astype(np.float32)
    table = pa.table({"loss_cond": [0.5] * 8 + [None], "embedding": pa.array(list(vectors), pa.list_(pa.float32(), 4))})
    sel = Selection.all(9)
    sel.drop([0], "dropped earlier")
    step = Indicators(["ppl", "knn6"])
    cols = step.columns(table, sel)
    step.apply(table, sel)
    assert len(sel.kept) == 8  # it decides nothing
    assert cols["ppl"].to_pylist()[0] is None and cols["ppl"].to_pylist()[1] == pytest.approx(np.exp(0.5))
    assert cols["ppl"].to_pylist()[8] is None  # no loss_cond: no ppl
    assert cols["knn6"].to_pylist()[1:] == pytest.approx(knn_distance(vectors[1:], 6).tolist())
    with pytest.raises(ValueError, match="ppl and knnK"):
        Indicators(["reward"])


@pytest.mark.slow  # the real command (a minute on 2 CPU cores); the two tests above cover its parts
def test_score_instructmining_writes_ppl_and_knn6(tmp_path):
    """The real command, on 7 rows (KNN-6 needs more than 6): the table holds every indicator, `ppl` = exp(loss_cond)."""
    import math

    import pyarrow.parquet as pq

    small = tmp_path / "small.json"
    small.write_text(json.dumps(json.loads(SAMPLE.read_text())[:7]))
    out = tmp_path / "scores.parquet"
    args = ["score", str(small), "--method", "instructmining", "-o", str(out), "--cache-dir", str(tmp_path / "c")]
    cli(*args, "-q")
    table = pq.read_table(out)
    for name in ("output_tokens", "input_tokens", "mtld", "ppl", "knn6"):
        assert name in table.column_names and table.column(name).null_count == 0, name
    for ppl, loss in zip(table.column("ppl").to_pylist(), table.column("loss_cond").to_pylist(), strict=True):
        assert ppl == pytest.approx(math.exp(loss), rel=1e-12)


def test_a_namespaced_selector_drops_a_row_with_its_scorers_reason(tmp_path):
    """A selector with `as: sf` sees sf.ifd as `ifd`: the declaration follows, so a row without a score is
    dropped with the scorer's own reason."""
    from instructsift.pipeline import _namespace_view
    from instructsift.selection import Selection
    from instructsift.selection.top import Top

    scorer = _build("ifd", tmp_path)
    rows = [_row(scorer, set(), None), _row(scorer, {"ifd"}, "too long: 600 tokens")]
    table = pa.Table.from_pylist(rows, schema=scorer.schema)
    table = table.rename_columns([f"sf.{n}" for n in table.column_names])
    table = with_configs(table, [{**scorer_configs([scorer])[0], "namespace": "sf"}])
    sel = Selection.all(2)
    Top("ifd", k=1).apply(_namespace_view(table, "sf"), sel)
    assert sel.reasons == [None, "not scored (too long: 600 tokens)"]
