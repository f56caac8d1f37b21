"""Examples held as Arrow (`data.examples.ExampleTable`) give back exactly the `Example`s read before, and a
scorer's chunks are put in order (`engine.assemble`) exactly as joining and taking them would."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from instructsift.data import examples as ex_mod
from instructsift.data.errors import FieldError
from instructsift.data.example import Example, Message
from instructsift.data.examples import CHUNK, ExampleTable, ExampleView, key_column, take
from instructsift.data.io import EXACT_DUPLICATE, _raw_records, container_of, parse_record, read
from instructsift.data.records import PARSERS
from instructsift.engine.assemble import in_order, last_positions
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


@pytest.mark.parametrize("null_at", [None, 7])
def test_in_order_equals_joining_then_taking(null_at):
    rng = random.Random(1)
    unique = [f"h{i}" for i in range(300)]
    order = unique + rng.sample(unique, 50)  # the data set: repeats too
    rng.shuffle(order)
    hashes = pa.array(order, pa.string())
    parts = _parts(rng, unique, 16, null_at)
    joined = last_wins(pa.concat_tables(parts)).combine_chunks()
    want = joined.take(pa.compute.index_in(hashes, value_set=joined.column("content_hash")))
    at = last_positions(parts, hashes)
    got = in_order(parts, at, ["x", "sig"])
    assert parts == []  # handed over, so that each chunk can be let go
    assert got["x"].equals(want.column("x").combine_chunks())
    assert got["sig"].equals(want.column("sig").combine_chunks())
    assert got["sig"].type == pa.list_(pa.uint32(), 16)


def test_in_order_finds_what_is_missing_and_does_not_copy_a_whole_chunk():
    table = pa.table({"content_hash": ["a", "b"], "sig": pa.array([[1, 2], [3, 4]], pa.list_(pa.uint32(), 2))})
    assert last_positions([table], pa.array(["b", "c", "a"])).tolist() == [1, -1, 0]
    at = last_positions([table], pa.array(["a", "b"]))
    got = in_order([table], at, ["sig"])["sig"]
    assert got.values.buffers()[1].address == table.column("sig").chunk(0).values.buffers()[1].address


def test_a_filled_column_is_one_buffer_without_a_copy():
    """The preallocated numpy buffer becomes the Arrow column as it is (no copy at the end)."""
    parts = [
        pa.table({"content_hash": ["b"], "sig": pa.array([[3, 4]], pa.list_(pa.uint32(), 2))}),
        pa.table({"content_hash": ["a"], "sig": pa.array([[1, 2]], pa.list_(pa.uint32(), 2))}),
    ]
    at = last_positions(parts, pa.array(["a", "b", "a"]))
    held = list(parts)  # so that nothing is let go while Arrow's pool is watched
    before = pa.total_allocated_bytes()
    got = in_order(parts, at, ["sig"])["sig"]
    assert pa.total_allocated_bytes() == before  # numpy's memory, wrapped; no copy in Arrow's pool
    assert got.to_pylist() == [[1, 2], [3, 4], [1, 2]] and len(held) == 2
    assert np.asarray(got.values).dtype == np.uint32
