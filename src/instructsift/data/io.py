"""Reading any supported file into a `Dataset` and writing a selection back in the same format.

Containers: a JSON array, JSON Lines (optionally gzipped), Parquet, and a folder saved by
`datasets.Dataset.save_to_disk`. Record formats inside them: see `records.py`.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .errors import FieldError, InputError, Reject
from .example import Example
from .records import FORMATS, PARSERS, check_conversation, detect_format

CONTAINERS = ("json", "jsonl", "parquet", "hf")


@dataclass
class Dataset:
    """Examples read from one source, the rows that were rejected, and what is needed to write back."""

    path: str
    format: str
    container: str
    examples: list[Example]
    rejects: list[Reject] = field(default_factory=list)
    n_read: int = 0
    table: Any = None  # the pyarrow Table of a Parquet file or datasets folder, for faithful writing
    json_indent: int | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)


def container_of(path: str | Path) -> str:
    """The container a path names, from its extension (a folder is a datasets folder)."""
    p = Path(path)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if p.is_dir() or not p.suffix:
        return "hf"
    raise ValueError(f"{path}: unknown file type {p.suffix!r} (expected .json, .jsonl, .parquet or a datasets folder)")


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when they are gzip, without a UTF-8 byte-order mark."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.removeprefix(b"\xef\xbb\xbf")


def _lines(path: Path) -> Iterator[bytes]:
    """A file's lines as bytes (gunzipped when gzip, without a UTF-8 byte-order mark), read as a stream:
    neither the whole file nor a list of its lines is held, which at a million rows is twice the file."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gz else path.open("rb") as f:
        first = True
        for line in f:
            if first:
                line, first = line.removeprefix(b"\xef\xbb\xbf"), False
            yield line.removesuffix(b"\n")


def _open_text(path: Path) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(Reject(str(path), None, line, None, f"not UTF-8 text ({e.reason})")) from None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _iter_json_array(text: str, path: str) -> Iterator[tuple[int, Any]]:
    """Yield (line, value) for each element of a top-level JSON array, with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = 0
    n = len(text)
    ws = " \t\r\n"
    while pos < n and text[pos] in ws:
        pos += 1
    if pos >= n or text[pos] != "[":
        raise InputError(Reject(path, None, _line_of(text, pos), None, "expected a JSON array of records"))
    pos += 1
    line, last = 1, 0
    expect_value = True
    while True:
        while pos < n and text[pos] in ws:
            pos += 1
        if pos >= n:
            raise InputError(Reject(path, None, _line_of(text, pos), None, "invalid JSON: unterminated array"))
        if text[pos] == "]" and (expect_value is False or last == 0):
            return
        if not expect_value:
            if text[pos] != ",":
                raise InputError(Reject(path, None, _line_of(text, pos), None, "invalid JSON: expected ',' or ']'"))
            pos += 1
            expect_value = True
            continue
        line += text.count("\n", last, pos)
        last = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise InputError(Reject(path, None, e.lineno, None, f"invalid JSON: {e.msg} (column {e.colno})")) from None
        yield line, value
        pos = end
        expect_value = False


def _json_indent(text: str) -> int | None:
    start = text.find("[")
    brace = text.find("{", start)
    if start < 0 or brace < 0:
        return None
    between = text[start + 1 : brace]
    return len(between) - between.rfind("\n") - 1 if "\n" in between else None


def _raw_records(path: Path, container: str) -> tuple[list[tuple[int | None, Any]], Any, int | None]:
    """(line, record) pairs, the Arrow table if any, and the JSON indent."""
    if container == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return [(None, r) for r in table.to_pylist()], table, None
    if container == "hf":
        try:
            import datasets
        except ImportError:  # pragma: no cover - depends on the install
            raise SystemExit("reading a datasets folder needs `pip install datasets`") from None
        if (path / "dataset_dict.json").exists():
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
            raise InputError(
                Reject(str(path), None, None, None, f"a DatasetDict: name one split's folder ({', '.join(splits)})")
            )
        table = datasets.load_from_disk(str(path)).data.table
        return [(None, r) for r in table.to_pylist()], table, None
    if container == "json":
        text = _open_text(path)
        if text.lstrip()[:1] == "[":
            return list(_iter_json_array(text, str(path))), None, _json_indent(text)
    return _jsonl_records(path), None, None


@dataclass(frozen=True)
class Unreadable:
    """A JSON Lines row that is not a JSON value (or not UTF-8): rejected like any bad row."""

    text: str
    reason: str


def _jsonl_records(path: Path) -> list[tuple[int | None, Any]]:
    """(line, record) per non-blank line; a line that cannot be decoded is an `Unreadable` row, so that
    `--on-error skip` sends it to the rejects file and the rows around it still count."""
    out: list[tuple[int | None, Any]] = []
    for i, raw in enumerate(_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            out.append((i, Unreadable(raw.decode("utf-8", "replace"), f"not UTF-8 text ({e.reason})")))
            continue
        try:
            out.append((i, json.loads(text)))
        except json.JSONDecodeError as e:
            out.append((i, Unreadable(text, f"invalid JSON: {e.msg} (column {e.colno})")))
    return out


def read(
    path: str | Path,
    *,
    format: str | None = None,
    on_error: str = "fail",
    fields: Mapping[str, str] | None = None,
) -> Dataset:
    """Read instruction data from `path`, detecting the container and record format.

    `format` forces a record format (alpaca, sharegpt, openai). `fields` renames Alpaca fields,
    e.g. {"instruction": "prompt", "output": "answer"}. With on_error="skip", bad rows become
    `Reject`s on the returned data set instead of raising `InputError`.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    container = container_of(p)
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    raw, table, indent = _raw_records(p, container)
    if not raw:
        raise InputError(Reject(str(path), None, None, None, "no records"))
    fmt = format or next((f for _, r in raw[:1000] if (f := detect_format(r, fields))), None)
    if fmt is None:
        line, first = raw[0]
        if isinstance(first, Unreadable):
            raise InputError(Reject(str(path), 0, line, None, first.reason))
        keys = sorted(first) if isinstance(first, Mapping) else type(first).__name__
        raise InputError(
            Reject(str(path), 0, line, None, f"cannot tell the format from the fields {keys}; pass --format")
        )
    parser = PARSERS[fmt]
    examples: list[Example] = []
    rejects: list[Reject] = []
    for row, (line, record) in enumerate(raw):
        try:
            if isinstance(record, Unreadable):
                record = record.text
                raise FieldError(None, raw[row][1].reason)
            if not isinstance(record, Mapping):
                raise FieldError(None, f"a record must be an object, got {type(record).__name__}")
            messages = parser(record, fields)
            check_conversation(messages)
        except FieldError as e:
            reject = Reject(str(path), row, line, e.field, e.reason, record)
            if on_error == "fail":
                raise InputError(reject) from None
            rejects.append(reject)
            continue
        rid = record.get("id")
        ex_id = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else ""
        examples.append(Example(ex_id, tuple(messages), row, line, record))
    _assign_ids(examples)
    return Dataset(str(path), fmt, container, examples, rejects, len(raw), table, indent)


def _assign_ids(examples: list[Example]) -> None:
    """Content-derived ids where the record has none; repeats get a `~N` suffix so ids are unique."""
    seen: Counter[str] = Counter()
    for ex in examples:
        base = ex.id or ex.content_hash[:16]
        seen[base] += 1
        ex.id = base if seen[base] == 1 else f"{base}~{seen[base]}"


def _with_scores(record: Mapping[str, Any], scores: Mapping[str, Any] | None) -> Any:
    return {**record, **scores} if scores else record


def write(
    dataset: Dataset,
    rows: Sequence[int],
    path: str | Path,
    *,
    scores: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Write the records at input positions `rows` (in that order) to `path`, atomically.

    The container follows `path`'s extension; each record is the user's own, untouched, plus the
    matching `scores` mapping's fields when given.
    """
    container = container_of(path)
    by_row = {ex.row: ex for ex in dataset.examples}
    if dataset.table is not None and container in ("parquet", "hf"):
        _write_table(dataset, rows, path, container, scores)
        return
    records = [_with_scores(by_row[r].record, scores[i] if scores else None) for i, r in enumerate(rows)]
    if container in ("parquet", "hf"):
        import pyarrow as pa

        keys = list(dict.fromkeys(k for r in records for k in r))  # every field, not just the first record's
        _save_table(pa.table({k: [r.get(k) for r in records] for k in keys}), path, container)
        return
    if container == "json":
        text = json.dumps(records, ensure_ascii=False, indent=dataset.json_indent if dataset.json_indent else 2)
        data = (text + "\n").encode("utf-8")
    else:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write_table(dataset: Dataset, rows: Sequence[int], path: str | Path, container: str, scores) -> None:
    import pyarrow as pa

    table = dataset.table.take(pa.array(rows, type=pa.int64()))
    if scores:
        extra = pa.Table.from_pylist(list(scores))
        for name in extra.column_names:  # a score named like an input field replaces it, as in JSON
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, extra[name]) if at >= 0 else table.append_column(name, extra[name])
    _save_table(table, path, container)


def _save_table(table: Any, path: str | Path, container: str) -> None:
    if container == "parquet":
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return
    import datasets

    with atomic_path(path, directory=True) as tmp:
        datasets.Dataset(table).save_to_disk(str(tmp))


def write_rejects(rejects: Sequence[Reject], path: str | Path) -> None:
    """One JSON line per rejected row: file, row, line, field, reason and the record."""
    text = "".join(json.dumps(r.as_dict(), ensure_ascii=False, default=str) + "\n" for r in rejects)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
