"""A score table knows what it was computed from: each row's content hash and each scorer's configuration.
Stale scores (a row changed since) and another configuration are errors; `rescore_changed` re-scores
only the changed rows and equals a fresh score."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from instructsift.api import read, read_scores, score, write_scores
from instructsift.data.errors import InputError
from instructsift.scoring.dedup import MinHashSignature
from instructsift.scoring.rules import Rules
from instructsift.scoring.table import configs_of

ALPACA = "alpaca/alpaca_random_9k.json"


def scorers(num_perm: int = 32) -> list:
    return [Rules(tokenizer=None, chunk_size=8), MinHashSignature(num_perm=num_perm, chunk_size=8)]


@pytest.fixture
def versions(shared_data, tmp_path):
    """v1.jsonl: 24 real Alpaca rows; v2.jsonl: the same with the answer of row 5 changed."""
    rows = [r for r in json.loads((shared_data / ALPACA).read_text(encoding="utf-8")) if r["output"].strip()][:24]
    v1, v2 = tmp_path / "v1.jsonl", tmp_path / "v2.jsonl"
    v1.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rows[5] = {**rows[5], "output": rows[5]["output"] + " (edited)"}
    v2.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return v1, v2, rows


def test_score_table_carries_hashes_and_configs(versions, tmp_path):
    v1, _, _ = versions
    ds = read(v1)
    table = score(ds, scorers(), cache_dir=tmp_path / "cache", progress=False)
    assert table.column_names[:3] == ["row", "id", "content_hash"]
    assert table.column("content_hash").to_pylist() == [ex.content_hash for ex in ds.examples]
    write_scores(table, tmp_path / "s.parquet")
    configs = configs_of(pq.read_table(tmp_path / "s.parquet"))
    assert [c["name"] for c in configs] == ["rules", "minhash"]
    assert configs[1]["cache_key"] == MinHashSignature(num_perm=32).cache_key()
    assert configs[1]["columns"] == ["text_hash", "minhash"]
    assert "32 permutations" in configs[1]["describe"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_a_changed_answer_is_an_error_naming_the_row(versions, tmp_path, suffix):
    v1, v2, rows = versions
    path = tmp_path / f"v1_scores{suffix}"
    write_scores(score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False), path)
    assert read_scores(path, read(v1), scorers()).num_rows == 24  # unchanged data: fine
    ds2 = read(v2)
    with pytest.raises(InputError) as e:
        read_scores(path, ds2)
    msg = str(e.value)
    ex = ds2.examples[5]
    assert f"1 row of {v2} changed" in msg
    assert f"row 5 (line 6, id {ex.id!r})" in msg
    assert "--rescore-changed" in msg


def test_many_changed_rows_name_the_first_five_and_the_count(versions, tmp_path):
    v1, _, rows = versions
    path = tmp_path / "v1_scores.parquet"
    write_scores(score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False), path)
    edited = [{**r, "output": r["output"] + "!"} if i % 3 == 0 else r for i, r in enumerate(rows)]  # + row 5
    v3 = tmp_path / "v3.jsonl"
    v3.write_text("".join(json.dumps(r) + "\n" for r in edited), encoding="utf-8")
    with pytest.raises(
        InputError,
        match=r"9 rows of .* changed .*: row 0 \(line 1, .*row 5 \(line 6, .*row 9 \(line 10, id '[^']+'\) and 4 more",
    ):
        read_scores(path, read(v3))


def test_rescore_changed_equals_a_fresh_score(versions, tmp_path):
    v1, v2, _ = versions
    old = tmp_path / "v1_scores.parquet"
    write_scores(score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False), old)
    stats: dict = {}
    ds2 = read(v2)
    spliced = read_scores(old, ds2, scorers(), rescore_changed=True, cache_dir=tmp_path / "cache2", progress=False)
    write_scores(spliced, tmp_path / "spliced.parquet")
    fresh = score(ds2, scorers(), cache_dir=tmp_path / "cache3", progress=False, stats=stats)
    write_scores(fresh, tmp_path / "fresh.parquet")
    assert (tmp_path / "spliced.parquet").read_bytes() == (tmp_path / "fresh.parquet").read_bytes()
    assert spliced.column("response_chars")[5].as_py() == len(ds2.examples[5].response)
    # only the changed row went through the scorers
    assert len(list((tmp_path / "cache2").glob("scores/*/part-*.parquet"))) == 2
    assert pq.read_table(next((tmp_path / "cache2").glob("scores/rules-*/part-*.parquet"))).num_rows == 1
    # the same through JSON Lines: the hash column survives, the values come back equal
    write_scores(score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False), tmp_path / "v1.jsonl")
    again = read_scores(tmp_path / "v1.jsonl", ds2, scorers(), rescore_changed=True, cache_dir=tmp_path / "c4")
    write_scores(again, tmp_path / "again.jsonl")
    write_scores(fresh, tmp_path / "fresh.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()


def test_rescore_changed_needs_the_scorers(versions, tmp_path):
    v1, v2, _ = versions
    old = tmp_path / "v1_scores.parquet"
    write_scores(score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False), old)
    with pytest.raises(ValueError, match="needs the scorers"):
        read_scores(old, read(v2), rescore_changed=True)


def test_an_older_table_without_hashes_says_to_score_again(versions, tmp_path):
    v1, _, _ = versions
    table = score(read(v1), scorers(), cache_dir=tmp_path / "cache", progress=False)
    old = tmp_path / "old.parquet"
    pq.write_table(table.drop_columns(["content_hash"]), old)
    with pytest.raises(InputError, match=r"field 'content_hash': missing: .*older instructsift.*score the data again"):
        read_scores(old, read(v1))


def test_another_configuration_is_an_error(versions, tmp_path):
    v1, _, _ = versions
    ds = read(v1)
    path = tmp_path / "s.parquet"
    write_scores(score(ds, scorers(num_perm=32), cache_dir=tmp_path / "cache", progress=False), path)
    with pytest.raises(InputError, match=r"made by other scorers: it has .*32 permutations.*this run uses .*64 perm"):
        read_scores(path, ds, scorers(num_perm=64))
    with pytest.raises(InputError, match="made by other scorers"):
        read_scores(path, ds, [MinHashSignature(num_perm=32)])
    # JSON Lines keeps no configuration: only the columns can be checked
    write_scores(score(ds, [Rules(tokenizer=None)], cache_dir=tmp_path / "cache", progress=False), tmp_path / "r.jsonl")
    with pytest.raises(InputError, match="field 'text_hash': missing: this score table was made by other scorers"):
        read_scores(tmp_path / "r.jsonl", ds, scorers())


def test_engine_reads_only_the_rows_it_needs_and_fills_repeats(versions, tmp_path):
    """A cache holding other data sets' rows gives back exactly this one's; a repeated example is scored
    once and both rows get its scores (the engine's take path); the same bytes as a fresh run."""
    from instructsift.data.io import Dataset

    v1, v2, _ = versions
    cache = tmp_path / "cache"
    score(read(v2), scorers(), cache_dir=cache, progress=False)  # another data set in the same cache
    ds = read(v1)
    doubled = Dataset(ds.path, ds.format, ds.container, [*ds.examples, *ds.examples[:3]])
    stats: dict = {}
    got = score(doubled, scorers(), cache_dir=cache, progress=False, stats=stats)
    assert stats["rules"] == {"cached": 23, "scored": 1, "unique": 24}  # v2 differs from v1 in row 5 only
    fresh = score(doubled, scorers(), cache_dir=tmp_path / "fresh", progress=False)
    assert got.equals(fresh) and got.schema.equals(fresh.schema, check_metadata=True)
    assert got.slice(24).drop_columns(["row"]).equals(got.slice(0, 3).drop_columns(["row"]))
    write_scores(got, tmp_path / "a.parquet")
    write_scores(fresh, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


# -- the same checks on the one path runs take (recipes, `select --scores`) ---------------------------------


def _recipe_run(data: dict, **settings):
    from instructsift import recipe as recipes
    from instructsift.pipeline import run

    return run(recipes.from_dict({**data, **settings}), progress=False, log=lambda _m: None)


STEPS = [
    {"score": "minhash", "with": {"num_perm": 32, "chunk_size": 8}},
    {"score": "rules", "with": {"tokenizer": None, "chunk_size": 8}},
    {"select": "dedup"},
    {"select": "top", "with": {"column": "response_chars", "k": 10}},
]


def test_a_run_from_a_stale_table_names_the_row_and_rescore_changed_equals_a_fresh_run(versions, tmp_path):
    v1, v2, _ = versions
    cache = str(tmp_path / "cache")
    _recipe_run({"input": str(v1), "steps": STEPS}, scores=str(tmp_path / "s.parquet"), cache_dir=cache)
    with pytest.raises(InputError) as e:
        _recipe_run({"input": str(v2), "steps": STEPS}, from_scores=str(tmp_path / "s.parquet"), cache_dir=cache)
    assert "s.parquet" in str(e.value) and "row 5 (line 6" in str(e.value) and "--rescore-changed" in str(e.value)
    fresh = _recipe_run({"input": str(v2), "steps": STEPS}, output=str(tmp_path / "fresh.json"), cache_dir=cache)
    spliced = _recipe_run(
        {"input": str(v2), "steps": STEPS},
        from_scores=str(tmp_path / "s.parquet"),
        rescore_changed=True,
        output=str(tmp_path / "spliced.json"),
        cache_dir=cache,
    )
    assert spliced.table.drop(["content_hash"]).equals(fresh.table.drop(["content_hash"]))
    assert spliced.table.column("content_hash").equals(fresh.table.column("content_hash"))
    assert (tmp_path / "spliced.json").read_bytes() == (tmp_path / "fresh.json").read_bytes()
    # the edited row's answer is longer: its fresh response_chars, not the stale one, is in the table
    chars = spliced.table.column("response_chars").to_pylist()
    old = pq.read_table(tmp_path / "s.parquet").column("response_chars").to_pylist()
    assert chars[5] == old[5] + len(" (edited)") and chars[:5] == old[:5]


def test_a_run_from_a_table_another_configuration_made_is_an_error(versions, tmp_path):
    v1, _, _ = versions
    _recipe_run({"input": str(v1), "steps": STEPS}, scores=str(tmp_path / "s.parquet"), cache_dir=str(tmp_path / "c"))
    other = [{"score": "minhash", "with": {"num_perm": 64, "chunk_size": 8}}, *STEPS[1:]]
    with pytest.raises(InputError) as e:
        _recipe_run({"input": str(v1), "steps": other}, from_scores=str(tmp_path / "s.parquet"))
    assert "s.parquet" in str(e.value) and "32 permutations" in str(e.value) and "64 permutations" in str(e.value)
    # the same configuration reads it back without scoring (no cache dir given: nothing to read there)
    again = _recipe_run({"input": str(v1), "steps": STEPS}, from_scores=str(tmp_path / "s.parquet"))
    assert again.table.column("minhash").equals(pq.read_table(tmp_path / "s.parquet").column("minhash"))


def test_many_cache_shards_merge_into_one_that_reads_the_same(tmp_path):
    """Past MAX_SHARDS the shards are merged (a shard at a time) into one; what the cache reads, a later
    result for a hash winning over an earlier one, does not change."""
    import pyarrow as pa

    from instructsift.scoring.cache import MAX_SHARDS, ScoreCache

    schema = pa.schema([("x", pa.float64())])
    cache = ScoreCache(tmp_path, "s", "k", schema)
    for i in range(MAX_SHARDS + 6):
        cache.add([(f"h{i}", {"x": float(i)}), ("same", {"x": float(i)})])  # flush_seconds=0: a shard each
    before = cache.read()
    assert len(list(cache.dir.glob("part-*.parquet"))) == MAX_SHARDS + 6
    cache.close()
    assert len(list(cache.dir.glob("part-*.parquet"))) == 1
    after = ScoreCache(tmp_path, "s", "k", schema).read()
    assert after.equals(before) and after.num_rows == MAX_SHARDS + 7
    assert dict(zip(*after.to_pydict().values(), strict=True))["same"] == MAX_SHARDS + 5
