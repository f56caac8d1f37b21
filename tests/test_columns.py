"""What every scorer declares about its columns (`Scorer.columns`), and the accounting that reads it:
a row missing a score is unscored whatever the scorer's column names look like, and a run where nothing
could be scored ends with exit 1. Every registered scorer is checked, so a new one is too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from instructsift import registry
from instructsift.accounting import missing_by_scorer, unscored_mask
from instructsift.engine.table import scorer_configs, with_configs
from instructsift.scoring.base import reason_columns, score_reasons

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


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("lengths", "rules", "minhash", "language")])
def test_a_run_where_nothing_could_be_scored_exits_1(name, tmp_path, monkeypatch):
    """The scorer (its real class and declaration, through the real engine) gives every row a missing
    score: the CLI says so and exits 1, whatever its columns are called."""
    from instructsift.cli import app

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
    res = CliRunner().invoke(app, ["run", str(recipe), "-q"])
    assert res.exit_code == 1, res.output
    assert "no row could be scored" in res.output and "test" in res.output


def test_a_scorer_after_a_selector_counts_only_the_rows_it_was_given(tmp_path):
    """The demo printed `embedding: 16 scored, 16 missing (not scored: 16)` for the 16 rows an earlier step
    had dropped: those were not asked, not missing."""
    from instructsift.cli import app

    steps = [
        {"score": "rules", "with": {"tokenizer": None}},
        {"select": "top", "with": {"column": "response_chars", "k": 3}},
        {"score": "mtld"},
    ]
    recipe = tmp_path / "recipe.yaml"
    out = {"input": str(SAMPLE), "output": str(tmp_path / "out.json"), "cache_dir": str(tmp_path / "c")}
    recipe.write_text(json.dumps({**out, "steps": steps}))
    res = CliRunner().invoke(app, ["run", str(recipe), "-q"])
    assert res.exit_code == 0, res.output
    assert "mtld: 3 scored, 0 missing; 29 dropped before this step" in res.output, res.output
    assert "read 32 · kept 3" in res.output
