"""Examples held as Arrow (`data.examples.ExampleTable`) give back exactly the `Example`s read before, and a
scorer's chunks are put in order (`engine.assemble`) exactly as joining and taking them would."""

from __future__ import annotations

import json
import random
import tempfile

import numpy as np
import pyarrow as pa
import pytest

from instructsift.data import examples as ex_mod
from instructsift.data.errors import FieldError
from instructsift.data.example import Example, Message
from instructsift.data.examples import CHUNK, ExampleTable, ExampleView, key_column, take
from instructsift.data.io import EXACT_DUPLICATE, _raw_records, container_of, parse_record, read
from instructsift.data.records import PARSERS
from instructsift.engine.assemble import Assembly, HashIndex, _keys
from instructsift.scoring.cache import last_wins


def _by_hand(path, fmt: str) -> list[Example]:
    """The examples of `path` made one by one from its records, the way `read` made them before Arrow
    (rows that do not parse left out, as `on_error="skip"` does)."""
    from collections import Counter

    out, seen = [], Counter()
    for row, (line, record) in enumerate(_raw_records(path, container_of(path)).records):
        try:
            messages = parse_record(record, PARSERS[fmt], None)
        except FieldError:
            continue
        rid = record.get("id")
        ex = Example(str(rid) if isinstance(rid, (str, int)) else "", messages, row, line)
        base = ex.id or ex.content_hash[:16]
        seen[base] += 1
        ex.id = base if seen[base] == 1 else f"{base}~{seen[base]}"
        out.append(ex)
    return out


@pytest.mark.parametrize("name", ["alpaca/alpaca_random_9k.json", "multiturn/sharegpt_dummy_500.json"])
def test_read_holds_arrow_and_gives_back_the_same_examples(shared_data, name):
    """9k Alpaca rows span three batches (inputs present and empty, some rows rejected); ShareGPT has many
    turns per row."""
    path = shared_data / name
    ds = read(path, on_error="skip")
    assert isinstance(ds.examples, ExampleTable)
    want = _by_hand(path, ds.format)
    assert len(ds.examples) == len(want) > 0
    assert list(ds.examples) == want
    assert [ex.content_hash for ex in ds.examples] == [ex.content_hash for ex in want]
    assert key_column(ds.examples, "id").to_pylist() == [ex.id for ex in want]
    assert ds.examples[-1] == want[-1] and ds.examples[len(want) // 2] == want[len(want) // 2]


def test_texts_past_the_limit_go_to_a_temporary_file_and_come_back_the_same(shared_data, tmp_path, monkeypatch):
    """Messages past `SPILL_BYTES` sit in an unlinked file (nothing left in TMPDIR); every example, a take of
    them and the key columns are as when held in memory."""
    path = shared_data / "alpaca" / "alpaca_random_9k.json"
    held = read(path, on_error="skip")
    monkeypatch.setattr(ex_mod, "SPILL_BYTES", 1 << 20)  # the 9k rows' messages hold ~4 MB
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spilled = read(path, on_error="skip")
    assert spilled.examples.spilled and not held.examples.spilled
    assert list(tmp_path.iterdir()) == []  # unlinked once written
    assert list(spilled.examples) == list(held.examples) and spilled.examples[-1] == held.examples[-1]
    assert key_column(spilled.examples, "content_hash").equals(key_column(held.examples, "content_hash"))
    positions = [8000, 3, 3, 4500, 0]
    assert spilled.examples.take(positions) == [held.examples[i] for i in positions]


def test_a_table_of_examples_round_trips_every_field():
    """None and "" contexts, system turns, lines and no lines, more rows than a batch."""
    exs = []
    for i in range(CHUNK + 37):
        msgs = [Message("user", f"question {i} é", ("" if i % 3 == 0 else f"ctx {i}") if i % 2 else None)]
        if i % 5 == 0:
            msgs.insert(0, Message("system", "be brief"))
        msgs.append(Message("assistant", f"answer {i} 😀"))
        exs.append(Example(f"id{i}", tuple(msgs), i, None if i % 4 == 0 else i + 1, {"n": i}))
    table = ExampleTable.of(exs)
    assert len(table) == len(exs) and table == exs and table[5:9] == exs[5:9] and table[-1] == exs[-1]
    assert [ex.record for ex in table] == [ex.record for ex in exs]
    assert table[3].messages[0].context == "" and table[2].messages[0].context is None
    assert [ex.content_hash for ex in table] == [ex.content_hash for ex in exs]
    with pytest.raises(IndexError):
        table[len(exs)]


def test_take_and_views_keep_order_repeats_and_records():
    exs = [
        Example(f"i{i}", (Message("user", f"q{i}"), Message("assistant", f"a{i}")), i, i + 1, i) for i in range(9000)
    ]
    table = ExampleTable.of(exs)
    rng = random.Random(0)
    positions = [rng.randrange(len(exs)) for _ in range(5000)] + [8999, 0, 0, -1]
    got = table.take(positions)
    assert isinstance(got, ExampleTable) and got == [exs[i] for i in positions]
    assert [ex.record for ex in got] == [exs[i].record for i in positions]
    assert take(exs, positions[:10]) == [exs[i] for i in positions[:10]]
    view = ExampleView(table, positions)
    assert (
        len(view) == len(positions) and view[7] == exs[positions[7]] and view[2:5] == [exs[i] for i in positions[2:5]]
    )
    assert key_column(got, "row").to_pylist() == [exs[i].row for i in positions]


def test_ids_and_duplicate_notes_carry_across_batches(tmp_path):
    """The same record more times than a batch holds: ids `h`, `h~2`, … and the duplicates counted over
    every batch, as when every example was held at once."""
    path = tmp_path / "same.jsonl"
    n = CHUNK + 10
    path.write_text("".join(json.dumps({"instruction": "Say hi.", "output": "Hi."}) + "\n" for _ in range(n)))
    ds = read(path, keep_records=False)
    ids = key_column(ds.examples, "id").to_pylist()
    base = ds.examples[0].content_hash[:16]
    assert ids[:3] == [base, f"{base}~2", f"{base}~3"] and ids[-1] == f"{base}~{n}" and len(set(ids)) == n
    assert ds.notes[EXACT_DUPLICATE] == n - 1


def test_records_held_or_not_read_back_the_same(tmp_path, shared_data):
    src = shared_data / "dolly" / "dolly_3k.json"
    held, again = read(src), read(src, keep_records=False)
    last = held.examples[-1].row
    rows = [5, last, 0, 17, 17]
    assert list(held.records(rows)) == list(again.records(rows))
    assert held.examples == again.examples  # the records do not count in an example's equality


def test_a_table_refuses_batches_of_another_size():
    with pytest.raises(ValueError):
        ExampleTable([ex_mod._batch([Example("a", (Message("user", "q"),), 0)])] * 2)


# -- engine.assemble ------------------------------------------------------------------------------------------


def _parts(rng: random.Random, hashes: list[str], d: int, null_at: int | None = None) -> list[pa.Table]:
    """Chunks covering every hash (some twice, in later chunks: the later wins), shuffled."""
    schema = pa.schema([("content_hash", pa.string()), ("x", pa.float64()), ("sig", pa.list_(pa.uint32(), d))])
    rows = [(h, rng.random()) for h in hashes] + [(h, rng.random()) for h in rng.sample(hashes, len(hashes) // 5)]
    parts, lo = [], 0
    while lo < len(rows):
        n = rng.randint(1, 40)
        chunk = rows[lo : lo + n]
        sigs = [[rng.randrange(2**32) for _ in range(d)] for _ in chunk]
        if null_at is not None and lo <= null_at < lo + n:
            sigs[null_at - lo] = None
        parts.append(
            pa.table({"content_hash": [h for h, _ in chunk], "x": [x for _, x in chunk], "sig": sigs}, schema=schema)
        )
        lo += n
    return parts


SCHEMA = pa.schema([("x", pa.float64()), ("sig", pa.list_(pa.uint32(), 16))])


def _assembled(parts: list[pa.Table], hashes: pa.Array, schema: pa.Schema = SCHEMA) -> dict[str, pa.Array]:
    assembly = Assembly(HashIndex(hashes), schema)
    for part in parts:
        assembly.add(part)
    return assembly.columns()


@pytest.mark.parametrize("null_at", [None, 7])
def test_assembly_equals_joining_then_taking(null_at):
    rng = random.Random(1)
    unique = [f"h{i:03d}" for i in range(300)]
    order = unique + rng.sample(unique, 50)  # the data set: repeats too
    rng.shuffle(order)
    hashes = pa.array(order, pa.string())
    parts = _parts(rng, unique, 16, null_at)
    parts.append(parts[0].slice(0, 0))  # an empty chunk, and one of hashes the data set lacks
    parts.append(pa.table({"content_hash": ["zzzz"], "x": [1.0], "sig": [list(range(16))]}, schema=parts[0].schema))
    joined = last_wins(pa.concat_tables(parts)).combine_chunks()
    want = joined.take(pa.compute.index_in(hashes, value_set=joined.column("content_hash")))
    got = _assembled(parts, hashes)
    assert got["x"].equals(want.column("x").combine_chunks())
    assert got["sig"].equals(want.column("sig").combine_chunks())
    assert got["sig"].type == pa.list_(pa.uint32(), 16)


def test_hash_index_finds_every_row_of_a_hash_whatever_its_length():
    """Hashes of one length are read without a copy; others (ids of any length, non-ASCII) padded."""
    index = HashIndex(pa.array(["b", "ä", "ccc", "b", "a"]))
    rows, at = index.lookup(pa.array(["b", "zz", "ä", "cccc", "a"]))
    assert sorted(zip(at.tolist(), rows.tolist(), strict=True)) == [(0, 0), (0, 3), (2, 1), (4, 4)]
    same = pa.array(["ab", "cd", "ab"])
    assert _keys(same).ctypes.data == same.buffers()[2].address  # the Arrow buffer's bytes, not copied
    assert _keys(pa.array(["ab", "c"])).tolist() == [b"ab", b"c"]
    assert sorted(HashIndex(same).lookup(pa.array(["cd", "ab"]))[0].tolist()) == [0, 1, 2]


def test_assembly_says_what_is_missing_and_refuses_a_partial_list():
    schema = pa.schema([("sig", pa.list_(pa.uint32(), 2))])
    assembly = Assembly(HashIndex(pa.array(["b", "c", "a"])), schema)
    assembly.add(pa.table({"content_hash": ["a", "b"], "sig": pa.array([[1, 2], [3, 4]], schema.field(0).type)}))
    assert assembly.covered.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="no result"):
        assembly.columns()
    assembly.add(pa.table({"content_hash": ["c"], "sig": pa.array([None], schema.field(0).type)}))
    assert assembly.columns()["sig"].to_pylist() == [[3, 4], None, [1, 2]]  # a null row stays null
    with pytest.raises(ValueError, match="missing value"):
        Assembly(HashIndex(pa.array(["c"])), schema).add(
            pa.table({"content_hash": ["c"], "sig": pa.array([[1, None]], schema.field(0).type)})
        )


def test_an_empty_data_set_assembles_empty_columns():
    got = Assembly(HashIndex(pa.array([], pa.string())), pa.schema([("x", pa.float64())] + list(SCHEMA)[1:])).columns()
    assert got["x"].type == pa.float64() and len(got["x"]) == 0 and len(got["sig"]) == 0


def test_a_wide_column_is_filled_as_chunks_arrive_into_one_buffer():
    """The preallocated numpy buffer becomes the Arrow column as it is (no copy in Arrow's pool at the end),
    and a chunk is not held once added."""
    schema = pa.schema([("sig", pa.list_(pa.uint32(), 2))])
    assembly = Assembly(HashIndex(pa.array(["a", "b", "a"])), schema)
    for h, sig in (("b", [3, 4]), ("a", [1, 2])):
        chunk = pa.table({"content_hash": [h], "sig": pa.array([sig], schema.field(0).type)})
        assembly.add(chunk)
        assert chunk.column("sig").chunk(0).values.buffers()[1].address != assembly._wide["sig"][0].ctypes.data
    before = pa.total_allocated_bytes()
    got = assembly.columns()["sig"]
    assert pa.total_allocated_bytes() == before  # numpy's memory, wrapped
    assert got.to_pylist() == [[1, 2], [3, 4], [1, 2]]
    assert np.asarray(got.values).dtype == np.uint32
