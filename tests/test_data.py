"""Every format reads and round-trips; every kind of bad input gets a clear error or a reject with its reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructsift.data import InputError, read, write, write_rejects

ALPACA = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "extra": {"keep": [1, 2]}},
]
SHAREGPT = [
    {
        "id": "c1",
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello! How can I help?"},
            {"from": "human", "value": "Tell me a joke."},
            {"from": "gpt", "value": "Why did the chicken cross the road?"},
        ],
    }
]
OPENAI = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
            {"role": "assistant", "content": "Paris."},
        ]
    }
]


def dump(path: Path, records, *, lines: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records) if lines else json.dumps(records, indent=2)
    path.write_text(text)
    return path


def test_alpaca_json_roundtrip_keeps_fields_and_indent(tmp_path):
    ds = read(dump(tmp_path / "a.json", ALPACA))
    assert (ds.format, ds.container, ds.json_indent, len(ds)) == ("alpaca", "json", 2, 2)
    second = ds.examples[1]
    assert [m.role for m in second.messages] == ["user", "assistant"]
    assert second.messages[0].context == "2 and 3" and second.messages[0].text == "Add the numbers.\n\n2 and 3"
    assert [ex.line for ex in ds.examples] == [2, 7]
    write(ds, [0, 1], tmp_path / "out.json")
    assert (tmp_path / "out.json").read_text() == (tmp_path / "a.json").read_text() + "\n"


def test_jsonl_gz_and_formats(tmp_path):
    for records, fmt in ((ALPACA, "alpaca"), (SHAREGPT, "sharegpt"), (OPENAI, "openai")):
        path = dump(tmp_path / f"{fmt}.jsonl", records, lines=True)
        ds = read(path)
        assert ds.format == fmt and ds.container == "jsonl"
        write(ds, [ex.row for ex in ds.examples], tmp_path / f"{fmt}.out.jsonl.gz")
        back = [json.loads(x) for x in gzip.decompress((tmp_path / f"{fmt}.out.jsonl.gz").read_bytes()).splitlines()]
        assert back == records
    conv = read(tmp_path / "sharegpt.jsonl").examples[0]
    assert conv.id == "c1" and conv.answer_turns == [1, 3]
    chat = read(tmp_path / "openai.jsonl").examples[0]
    assert [m.role for m in chat.messages] == ["system", "user", "assistant"]
    assert chat.messages[1].content == "Capital of France?"


def test_parquet_and_datasets_folder_roundtrip(tmp_path):
    pq.write_table(pa.Table.from_pylist([{**r, "extra": r.get("extra")} for r in ALPACA]), tmp_path / "a.parquet")
    ds = read(tmp_path / "a.parquet")
    assert ds.format == "alpaca" and ds.container == "parquet" and ds.examples[0].line is None
    write(ds, [1], tmp_path / "out.parquet", scores=[{"ifd": 0.5}])
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == ["instruction", "input", "output", "extra", "ifd"]
    assert out.to_pylist()[0]["extra"] == {"keep": [1, 2]} and out.column("ifd").to_pylist() == [0.5]
    # scoring an already scored file: the new score replaces the old column instead of doubling it
    write(read(tmp_path / "out.parquet"), [0], tmp_path / "again.parquet", scores=[{"ifd": 0.25}])
    again = pq.read_table(tmp_path / "again.parquet")
    assert again.column_names == ["instruction", "input", "output", "extra", "ifd"]
    assert again.column("ifd").to_pylist() == [0.25]

    import datasets

    datasets.Dataset.from_list(SHAREGPT * 3).save_to_disk(str(tmp_path / "hf"))
    hf = read(tmp_path / "hf")
    assert hf.container == "hf" and hf.format == "sharegpt" and len(hf) == 3
    write(hf, [2, 0], tmp_path / "hf_out")
    again = datasets.load_from_disk(str(tmp_path / "hf_out"))
    assert again.to_list() == SHAREGPT * 2
    write(read(tmp_path / "a.parquet"), [0, 1], tmp_path / "back.json")
    write(read(tmp_path / "back.json"), [0, 1], tmp_path / "back.parquet")  # JSON -> Parquet keeps every field
    assert pq.read_table(tmp_path / "back.parquet").column_names == ["instruction", "input", "output", "extra"]


def test_lima_history_and_dolly_aliases(shared_data):
    lima = read(shared_data / "lima" / "lima_1k.json")
    multi = [ex for ex in lima.examples if ex.record["history"]]
    assert multi, "LIMA has conversations with history"
    ex = multi[0]
    assert len(ex.answer_turns) == len(ex.record["history"]) + 1
    assert ex.messages[0].content == ex.record["history"][0][0]
    dolly = read(shared_data / "dolly" / "dolly_3k.json")
    assert dolly.format == "alpaca" and len(dolly) == dolly.n_read == 2996


def test_ids_are_unique_and_stable(tmp_path):
    ds = read(dump(tmp_path / "d.json", [ALPACA[0], ALPACA[0], ALPACA[1]]))
    ids = [ex.id for ex in ds.examples]
    assert len(set(ids)) == 3 and ids[1] == ids[0] + "~2"
    assert [ex.id for ex in read(tmp_path / "d.json").examples] == ids


BAD = [
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]', "line 2", "invalid JSON"),
    ('[{"instruction": "a", "output": "b"},\n 7]', "line 2, row 1", "must be an object"),
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c"}]', "field 'output'", "missing"),
    ('[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": ""}]', "field 'output'", "is empty"),
    (
        '[{"instruction": "a", "output": "b"},\n {"instruction": 3, "output": "d"}]',
        "field 'instruction'",
        "must be a string, got int",
    ),
    ('[{"instruction": "a", "output": "b", "history": [["q"]]}]', "field 'history[0]'", "pair"),
    (
        '[{"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}]',
        "conversations[1].from",
        "unsupported role 'robot'",
    ),
    ('[{"conversations": [{"from": "human", "value": "q"}]}]', "row 0", "no assistant turn"),
    ('[{"messages": [{"role": "assistant", "content": "a"}]}]', "row 0", "no user turn before it"),
    (
        '[{"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "a"}]}]',
        "content[0]",
        "only text parts",
    ),
    ('[{"question": "q", "answer": "a"}]', "line 1", "cannot tell the format"),
    ('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"\n', "line 2", "invalid JSON"),
]


@pytest.mark.parametrize(("text", "where", "why"), BAD)
def test_bad_input_names_file_line_and_field(tmp_path, text, where, why):
    suffix = ".jsonl" if text.startswith("{") else ".json"
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(str(path)) and where in message and why in message


def test_skip_accounts_for_every_row(tmp_path, shared_data):
    ds = read(shared_data / "alpaca" / "alpaca_random_9k.json", on_error="skip")
    assert ds.n_read == 9229 == len(ds) + len(ds.rejects)
    assert len(ds.rejects) == 4 and all(r.field == "output" and r.reason == "is empty" for r in ds.rejects)
    assert ds.rejects[0].line == 7307 and ds.rejects[0].row == 1461
    write_rejects(ds.rejects, tmp_path / "rejects.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [x["row"] for x in lines] == [r.row for r in ds.rejects] and lines[0]["record"]["output"] == ""
    with pytest.raises(InputError, match="line 7307, row 1461, field 'output': is empty"):
        read(shared_data / "alpaca" / "alpaca_random_9k.json")


def test_skip_keeps_the_rows_around_a_broken_jsonl_line(tmp_path):
    """In JSON Lines each line is its own row: a line that is not JSON (or not UTF-8) is rejected alone."""
    path = tmp_path / "mixed.jsonl"
    good = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}).encode() for i in range(3)]
    path.write_bytes(b"\n".join([good[0], b'{"instruction": "q", "output": ', good[1], b"\xff\xfe{}", good[2]]) + b"\n")
    ds = read(path, on_error="skip")
    assert ds.n_read == 5 and [ex.row for ex in ds.examples] == [0, 2, 4]
    assert [(r.row, r.line) for r in ds.rejects] == [(1, 2), (3, 4)]
    assert "invalid JSON" in ds.rejects[0].reason and ds.rejects[0].record == '{"instruction": "q", "output": '
    assert "not UTF-8" in ds.rejects[1].reason
    with pytest.raises(InputError, match="line 2, row 1: invalid JSON"):
        read(path)


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match="line 1.*not UTF-8"):
        read(path)
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "nope.json")


# -- lone surrogates: one rejected row naming the field, never a crash ---------------------------------------

SURROGATE_ROWS = [
    {"instruction": "Name a colour.", "output": "Red."},
    {"instruction": "Say hi.", "output": "Hi \ud800 there."},
    {"instruction": "Add 2 and 3.", "output": "5"},
]


def _surrogate_files(tmp_path: Path) -> list[tuple[Path, str, int | None]]:
    """The same rows (the second holds a lone surrogate) as a JSON array, JSON Lines and Parquet; the
    field and line the error must name."""
    rows = SURROGATE_ROWS
    array = tmp_path / "s.json"
    array.write_text(json.dumps(rows, indent=2), encoding="utf-8")  # json.dumps writes the escape \ud800
    lines = tmp_path / "s.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # Parquet cannot hold a lone surrogate as a string; writers that let one through store its CESU-8 bytes
    raw = [r["output"].encode("utf-8", "surrogatepass") for r in rows]
    table = pa.table(
        {"instruction": [r["instruction"] for r in rows], "output": pa.array(raw, pa.binary()).view(pa.string())}
    )
    pq.write_table(table, tmp_path / "s.parquet")
    return [(array, "output", 6), (lines, "output", 2), (tmp_path / "s.parquet", "output", None)]


def test_a_lone_surrogate_is_a_field_error_and_skip_rejects_only_its_row(tmp_path):
    for path, field, line in _surrogate_files(tmp_path):
        with pytest.raises(InputError) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(f"{path}, ") and f"row 1, field '{field}'" in message, message
        assert "lone surrogate \\ud800" in message and (line is None or f"line {line}," in message), message
        ds = read(path, on_error="skip")
        assert ds.n_read == 3 and [ex.row for ex in ds.examples] == [0, 2], path
        (reject,) = ds.rejects
        assert (reject.row, reject.line, reject.field) == (1, line, field)
        # what scorers see (hashes, tokenizers) holds no surrogate
        for ex in ds.examples:
            assert ex.content_hash and all(m.text.encode("utf-8") for m in ex.messages)
        write_rejects(ds.rejects, tmp_path / "rejects.jsonl")
        back = (tmp_path / "rejects.jsonl").read_text(encoding="utf-8")
        assert "\\ud800" in back  # escaped, as in the input
        assert json.loads(back)["record"]["output"] == "Hi \ud800 there."
        write(ds, [ex.row for ex in ds.examples], tmp_path / f"kept{path.suffix}")
        assert len(read(tmp_path / f"kept{path.suffix}")) == 2


def test_a_lone_surrogate_deep_in_a_record_names_its_path(tmp_path):
    conv = {
        "conversations": [
            {"from": "human", "value": "q"},
            {"from": "gpt", "value": "a"},
            {"from": "human", "value": "more \udfff"},
            {"from": "gpt", "value": "b"},
        ]
    }
    path = dump(tmp_path / "c.jsonl", [conv, {**conv, "conversations": conv["conversations"][:2]}], lines=True)
    with pytest.raises(InputError, match=r"line 1, row 0, field 'conversations\[2\]\.value': holds a lone surrogate"):
        read(path)
    path = dump(tmp_path / "e.json", [{**ALPACA[1], "extra": {"keep": [1, "\ud801"]}}, ALPACA[0]])
    ds = read(path, on_error="skip")
    assert len(ds) == 1 and ds.rejects[0].field == "extra.keep[1]"  # a field no scorer reads still cannot be written

    # Parquet with nested CESU-8 bytes: the conversation's turn is named
    turns = pa.list_(pa.struct([("from", pa.binary()), ("value", pa.binary())]))
    values = [[{"from": b"human", "value": b"q"}, {"from": b"gpt", "value": b"a\xed\xb0\x80"}]]
    values.append([{"from": b"human", "value": b"q2"}, {"from": b"gpt", "value": b"a2"}])
    strings = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    pq.write_table(pa.table({"conversations": pa.array(values, turns).view(strings)}), tmp_path / "c.parquet")
    ds = read(tmp_path / "c.parquet", on_error="skip")
    assert len(ds) == 1 and ds.examples[0].messages[1].content == "a2"
    assert (ds.rejects[0].row, ds.rejects[0].field) == (0, "conversations[1].value")


# -- UTF-16 and UTF-32 files ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_files_are_read(tmp_path, encoding):
    """With a byte-order mark (`utf-16`, `utf-32` write one) or without (told apart by the zero bytes)."""
    rows = [{**ALPACA[0], "output": "Rouge, 赤 😀."}, ALPACA[1]]
    array = tmp_path / "a.json"
    array.write_bytes(json.dumps(rows, ensure_ascii=False, indent=2).encode(encoding))
    lines = tmp_path / "a.jsonl"
    lines.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(encoding))
    for path, first_lines in ((array, [2, 7]), (lines, [1, 2])):
        ds = read(path)
        assert ds.encoding == encoding.removesuffix("-le").removesuffix("-be") or ds.encoding == encoding
        assert [ex.record for ex in ds.examples] == rows and [ex.line for ex in ds.examples] == first_lines
        write(ds, [0, 1], tmp_path / f"out{path.suffix}")  # written back as UTF-8
        assert [ex.record for ex in read(tmp_path / f"out{path.suffix}").examples] == rows


def test_an_undecodable_utf16_file_names_file_and_line(tmp_path):
    good = '{"instruction": "a", "output": "b"}\n'
    path = tmp_path / "bad.jsonl"
    # a lone high surrogate (D800) on the third line of a UTF-16-LE file with a byte-order mark
    path.write_bytes(
        "\ufeff".encode("utf-16-le") + (good * 2).encode("utf-16-le") + b"\x00\xd8" + good.encode("utf-16-le")
    )
    with pytest.raises(InputError, match=r"bad.jsonl, line 3: not UTF-16 text \(illegal UTF-16 surrogate\)"):
        read(path)
    odd = tmp_path / "odd.json"
    odd.write_bytes(json.dumps([ALPACA[0]], indent=2).encode("utf-16") + b"\x00")  # one byte short of a unit
    with pytest.raises(InputError, match=r"odd.json, line 7: not UTF-16 text \(truncated data\)"):
        read(odd)


@pytest.mark.parametrize("name", ["in.jsonl", "in.jsonl.gz", "in.json", "in.parquet"])
def test_records_not_held_are_read_again_and_written_the_same(tmp_path, name):
    """`keep_records=False` (what `run` reads with) holds no record dicts: kept rows are read again from the
    file (JSON, JSON Lines, gzip) or taken from the table (Parquet), and every output is byte for byte what
    the records held in memory give; a bad row in between keeps the positions straight."""
    rows = [{**ALPACA[i % 2], "instruction": f"Task {i}: é 😀", "n": i} for i in range(25)]
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")
    else:
        lines = [json.dumps(r, ensure_ascii=False) for r in rows]
        lines.insert(7, '{"instruction": "no output"}')
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    held, slim = read(path, on_error="skip"), read(path, on_error="skip", keep_records=False)
    assert all(ex.record is None for ex in slim.examples) and [ex.row for ex in slim] == [ex.row for ex in held]
    picks = [held.examples[i].row for i in (0, 3, 7, 8, 20, 24)]
    for order in (picks, picks[::-1], []):
        assert (
            list(slim.records(order))
            == list(held.records(order))
            == [next(ex.record for ex in held if ex.row == r) for r in order]
        )
    for out in ("o.jsonl", "o.jsonl.gz", "o.json", "o.parquet"):
        write(held, picks, tmp_path / f"held.{out}")
        write(slim, picks, tmp_path / f"slim.{out}", scores=None)
        assert (tmp_path / f"held.{out}").read_bytes() == (tmp_path / f"slim.{out}").read_bytes(), out
    text = "".join(json.dumps(next(ex.record for ex in held if ex.row == r), ensure_ascii=False) + "\n" for r in picks)
    assert (tmp_path / "slim.o.jsonl.gz").read_bytes() == gzip.compress(text.encode("utf-8"), mtime=0)


def test_a_file_changed_after_reading_is_not_read_again(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ALPACA), encoding="utf-8")
    ds = read(path, keep_records=False)
    path.write_text("".join(json.dumps(r) + "\n" for r in ALPACA[::-1]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.jsonl: changed since it was read"):
        write(ds, [0], tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
