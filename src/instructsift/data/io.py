"""Reading any supported file into a `Dataset` and writing a selection back in the same format.

Containers: a JSON array, JSON Lines (optionally gzipped), Parquet, a folder saved by
`datasets.Dataset.save_to_disk`, and a hub data set (`org/name`, or a folder in the hub's layout) read
through `datasets.load_dataset` (`hub.py`). Record formats inside them: see `records.py`; other field
names map onto them with `fields` (`convert.parse_fields`).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import os
import re
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .arrow_rows import rows_of
from .errors import FieldError, InputError, MissingFileError, OptionError, Reject, UserError, literal, require
from .example import Example, Message
from .examples import CHUNK, Builder
from .hub import HubSource, hub_id, source_of
from .records import FORMATS, PARSERS, check_conversation, check_text, detect_format, fields_hint

CONTAINERS = ("json", "jsonl", "parquet", "hf", "hub")
STDOUT = "-"  # an output path meaning standard output: JSON Lines
# What `Dataset.notes` counts: rows that are read but not all of whose content is scored, and repeats.
TRAILING_TURN = "trailing {role} turn not scored"
EXACT_DUPLICATE = "exact duplicate of an earlier row"


@dataclass
class Dataset:
    """Examples read from one source, the rows that were rejected, and what is needed to write back.

    `notes` counts what is kept but worth saying: conversations ending on a turn that nothing answers
    (`trailing user turn not scored`: the answered turns are scored, the record is written back whole),
    and rows that repeat an earlier row's content (`exact duplicate of an earlier row`: same roles and
    texts, so the same `content_hash`; `selection.ExactDedup` drops them).

    Each example holds its raw record unless the data set was read with `keep_records=False`: then
    `records(rows)` reads the records again from the file (or takes them from `table`), so that a million
    rows cost their texts, not their dicts too."""

    path: str
    format: str
    container: str
    examples: Sequence[Example]  # an `ExampleTable` when read from a file; any sequence works
    rejects: list[Reject] = field(default_factory=list)
    n_read: int = 0
    table: Any = None  # the pyarrow Table of a Parquet file or datasets folder, for faithful writing
    json_indent: int | None = None
    encoding: str = "utf-8"  # the text encoding the file was read in (written back as UTF-8)
    notes: Counter[str] = field(default_factory=Counter)
    records_held: bool = True  # False: the examples' `record` is None (see `records`)
    stamp: tuple[int, int] | None = None  # the file's (size, mtime_ns) when it was read
    hub: HubSource | None = None  # a hub data set (or hub-layout folder): where `records` reads again
    origin: str = ""  # what was read, in words ("local file x.jsonl", "hub data set org/name (split train)")
    fields: Mapping[str, str] | None = None  # the field names it was read with (`read`'s `fields`)

    def records(self, rows: Sequence[int]) -> Iterator[Any]:
        """The raw records at input positions `rows`, in that order (see the class docstring). A file that
        changed since it was read is an error: its records might no longer be the examples'."""
        if self.records_held:
            held = getattr(self.examples, "records", None)
            if held is not None:  # an `ExampleTable`: the records sit in a list beside the columns
                at = dict(zip(self.examples.column("row").to_pylist(), range(len(held)), strict=True))
                return (held[at[r]] for r in rows)
            by_row = {ex.row: ex for ex in self.examples}
            return (by_row[r].record for r in rows)
        if self.table is not None:
            return rows_of(self.table, rows)
        if self.hub is not None:  # streamed: stream again (datasets' cache serves a rerun)
            return _records_at(((None, r) for r in self.hub.records()), rows)
        path = Path(self.path)
        if _stamp(path) != self.stamp:
            raise InputError(Reject(self.path, None, None, None, "changed since it was read: run again"))
        return _records_at(_stream_records(path, self.container).records, rows)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)


KNOWN_NAMES = ".json, .jsonl, .ndjson (each optionally .gz), .parquet, or a datasets folder"


def container_of(path: str | Path) -> str:
    """The container a path names, from its extension (a folder is a datasets folder). An existing file
    whose name says nothing (no extension, or just `.gz`) is told from its content (`sniff`)."""
    p = Path(path)
    if str(path) == STDOUT:
        return "jsonl"
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    if p.is_dir():
        return "hf"
    if p.is_file() and not Path(name).suffix:
        found = sniff(p)
        if found is None:
            raise UserError(f"{path}: cannot tell the file type from its name or content (understood: {KNOWN_NAMES})")
        return found
    if not p.suffix:
        return "hf"
    raise UserError(f"{path}: unknown file type {p.suffix!r} (expected .json, .jsonl, .parquet or a datasets folder)")


def sniff(path: Path) -> str | None:
    """The container a file's first bytes show: Parquet's `PAR1` magic, or (gunzipped when gzip) a JSON
    array (`[`) or JSON Lines (`{`), after any byte-order mark and white space; None when none fits."""
    with path.open("rb") as f:
        head = f.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4096)
        except (OSError, EOFError):
            return None
    encoding = json.detect_encoding(head[:4])
    text = head.decode(encoding, "ignore").lstrip("\ufeff \t\r\n")
    return {"[": "json", "{": "jsonl"}.get(text[:1])


def _read_bytes(path: Path) -> tuple[bytes, str]:
    """A file's bytes as UTF-8 (gunzipped when they are gzip, without a byte-order mark) and the encoding
    they were in. UTF-16 and UTF-32 (with a byte-order mark, or told apart by their zero bytes as RFC 4627
    does: `json.detect_encoding`) are decoded here; a file that is not valid in its encoding is an error
    naming the line."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    encoding = json.detect_encoding(data[:4])
    if encoding in ("utf-8", "utf-8-sig"):
        return data.removeprefix(b"\xef\xbb\xbf"), "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].decode(encoding, "replace").count("\n") + 1
        raise InputError(Reject(str(path), None, line, None, f"not {encoding.upper()} text ({e.reason})")) from None
    return text.removeprefix("\ufeff").encode("utf-8"), encoding


def _open_text(path: Path) -> tuple[str, str]:
    data, encoding = _read_bytes(path)
    try:
        return data.decode("utf-8"), encoding
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


@dataclass
class _Source:
    """What a container holds: (line, record) pairs, the Arrow table if any, the JSON indent, the encoding."""

    records: Iterable[tuple[int | None, Any]]
    table: Any = None
    indent: int | None = None
    encoding: str = "utf-8"


def _raw_records(path: Path, container: str) -> _Source:
    """`_stream_records` with the records as a list."""
    source = _stream_records(path, container)
    source.records = list(source.records)
    return source


def _stream_records(path: Path, container: str) -> _Source:
    """A container's records as an iterator: JSON Lines and tables are read row by row (a JSON array is
    parsed from its whole text), so that a reader need not hold every record at once."""
    if container == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except pa.ArrowException as e:
            raise InputError(Reject(str(path), None, None, None, _not_parquet(path, e))) from None
        return _Source(((None, r) for r in rows_of(table)), table)
    if container == "hf":
        datasets = require("datasets", "reading a datasets folder", extra="hf")
        if (path / "dataset_dict.json").exists():
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
            raise InputError(
                Reject(str(path), None, None, None, f"a DatasetDict: name one split's folder ({', '.join(splits)})")
            )
        table = datasets.load_from_disk(str(path)).data.table
        return _Source(((None, r) for r in rows_of(table)), table)
    if container == "json":
        text, encoding = _open_text(path)
        if text.lstrip()[:1] == "[":
            return _Source(_iter_json_array(text, str(path)), None, _json_indent(text), encoding)
    records, encoding = _jsonl_records(path)
    return _Source(records, encoding=encoding)


def _not_parquet(path: Path, error: Exception) -> str:
    """Why a `.parquet` file could not be read: not Parquet at all (and what it holds, when that shows), or
    a damaged one (pyarrow's reason)."""
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PAR1":
        held = sniff(path)
        return "not a Parquet file" + (
            f" (it holds {'a JSON array' if held == 'json' else 'JSON Lines'}: rename it)"
            if held
            else " (no PAR1 magic bytes)"
        )
    return f"a damaged Parquet file ({str(error).split(': ', 1)[-1]})"


def _records_at(records: Iterable[tuple[int | None, Any]], rows: Sequence[int]) -> Iterator[Any]:
    """The records at positions `rows` of a stream, in that order: streamed through when `rows` ascend
    (a selection's order), else those asked for are gathered first."""
    if all(a < b for a, b in itertools.pairwise(rows)):
        it = iter(rows)
        want = next(it, None)
        for pos, (_, record) in enumerate(records):
            if pos == want:
                yield record
                want = next(it, None)
                if want is None:
                    return
        if want is not None:
            raise IndexError(f"no row {want} in the input")
        return
    wanted = set(rows)
    got = {pos: record for pos, (_, record) in enumerate(records) if pos in wanted}
    yield from (got[r] for r in rows)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class Unreadable:
    """A JSON Lines row that is not a JSON value (or not UTF-8): rejected like any bad row."""

    text: str
    reason: str


def _lines(path: Path) -> Iterator[bytes]:
    """A UTF-8 file's lines as bytes (gunzipped when gzip, without a byte-order mark), read as a stream:
    neither the whole file nor a list of its lines is held, which at a million rows is twice the file."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gz else path.open("rb") as f:
        first = True
        for line in f:
            if first:
                line, first = line.removeprefix(b"\xef\xbb\xbf"), False
            yield line.removesuffix(b"\n")


def _encoding_of(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            head = f.read(4)
    return json.detect_encoding(head)


def _jsonl_records(path: Path) -> tuple[Iterator[tuple[int | None, Any]], str]:
    """(line, record) per non-blank line, as a stream, and the file's encoding; a line that cannot be
    decoded is an `Unreadable` row, so that `--on-error skip` sends it to the rejects file and the rows
    around it still count. UTF-8 files are streamed line by line; UTF-16/32 ones are decoded whole first."""
    encoding = _encoding_of(path)
    if encoding in ("utf-8", "utf-8-sig"):
        return _jsonl_rows(_lines(path)), "utf-8"
    data, encoding = _read_bytes(path)
    return _jsonl_rows(iter(data.split(b"\n"))), encoding


def _jsonl_rows(lines: Iterator[bytes]) -> Iterator[tuple[int | None, Any]]:
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield i, Unreadable(raw.decode("utf-8", "replace"), f"not UTF-8 text ({e.reason})")
            continue
        try:
            yield i, json.loads(text)
        except json.JSONDecodeError as e:
            yield i, Unreadable(text, f"invalid JSON: {e.msg} (column {e.colno})")


def format_unknown(path: str, line: int | None, first: Any, *, answer_optional: bool = False) -> InputError:
    """The error for a file whose format cannot be told from its first record (`first`, at `line`): what
    that record is, and the options that name the format or its fields."""
    if isinstance(first, Unreadable):
        return InputError(Reject(path, 0, line, None, first.reason))
    if not isinstance(first, Mapping):
        return InputError(Reject(path, 0, line, None, f"a record must be an object, got {type(first).__name__}"))
    names = sorted(map(str, first))
    keys = literal(str(names))
    if answer_optional:  # an instruction is all such a row needs: say which field is missing
        why = f"no instruction field (fields: {keys}); pass {{format}}, or name it with {{fields}}"
        return InputError(Reject(path, 0, line, "instruction", why), "format", fields=fields_hint(names, False))
    why = f"cannot tell the format from the fields {keys}; pass {{format}}, or name the fields with {{fields}}"
    return InputError(Reject(path, 0, line, None, why), "format", fields=fields_hint(names))


def read(
    path: str | Path,
    *,
    format: str | None = None,
    on_error: str = "fail",
    fields: Mapping[str, str] | None = None,
    keep_records: bool = True,
    allow_empty: bool = False,
    split: str | None = None,
    subset: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
    answer_optional: bool = False,
) -> Dataset:
    """Read instruction data from `path`, detecting the container and record format.

    `path` is a local file or folder, or a hub id (`org/name`, `hf://org/name`) read with `split` [train],
    `subset`, `revision` and `streaming` through `datasets.load_dataset`; a local path wins over a hub id
    of the same spelling (`Dataset.origin` says which was read). `format` forces a record format (alpaca,
    sharegpt, openai). `fields` maps a format's field names to the data's, e.g. {"instruction": "prompt",
    "output": "completion"}. With on_error="skip", bad rows become `Reject`s on the returned data set
    instead of raising `InputError`. With `keep_records=False` the examples do not hold their raw records
    (`Dataset.records` reads them again when they are written). A source without records is an error,
    unless `allow_empty`: then an empty data set (format "unknown" unless given), which writes back as an
    empty file of the same container. With `answer_optional` a row with an instruction and no answer (an
    Alpaca row without `output`, a conversation without an assistant turn) is valid: only where the caller
    says so (target rows, `data.targets`), never for data that is scored or trained on.
    """
    if on_error not in ("fail", "skip"):
        raise OptionError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if format is not None and format not in FORMATS:
        raise OptionError(f"unknown format {format!r} (known: {', '.join(FORMATS)})")
    hub = source_of(path, split=split, subset=subset, revision=revision, streaming=streaming)
    if hub is not None:
        loaded = hub.load()
        table = None if hub.streaming else loaded.data.table
        source = _Source(((None, r) for r in hub.records(loaded)), table)
        container, stamp, origin = "hub", None, hub.describe()
        path = hub.id
        if hub.local and hub_id(hub.id) is not None:
            origin += f" (a local folder: the hub id {hub.id} was not read)"
    else:
        p = Path(path)
        if not p.exists():
            raise MissingFileError(f"{path}: no such file or folder")
        container = container_of(p)
        stamp = _stamp(p) if container in ("json", "jsonl") else None
        source = _stream_records(p, container)
        origin = f"local {'folder' if p.is_dir() else 'file'} {path}"
        if hub_id(path) is not None:
            origin += f" (the hub id {hub_id(path)} was not read)"
    records = iter(source.records)
    head = list(itertools.islice(records, 1000))
    if not head:
        if not allow_empty:
            raise InputError(
                Reject(str(path), None, None, None, "no records; pass {allow_empty} to write an empty result"),
                allow_empty=True,
            )
        return Dataset(str(path), format or "unknown", container, Builder().finish(), table=source.table,
                       json_indent=source.indent, encoding=source.encoding, records_held=keep_records, stamp=stamp,
                       hub=hub, origin=origin, fields=fields)  # fmt: skip
    fmt = format or next((f for _, r in head if (f := detect_format(r, fields))), None)
    if fmt is None:
        raise format_unknown(str(path), *head[0], answer_optional=answer_optional)
    parser = PARSERS[fmt]
    if answer_optional:
        parser = functools.partial(parser, answer_optional=True) if fmt == "alpaca" else parser
    # Examples go into Arrow columns a chunk at a time (`ExampleTable`): ids and notes are settled per chunk
    # (the counts carry over), so that no more than a chunk of `Example` objects is held.
    builder = Builder()
    pending: list[Example] = []
    ids: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    hashes: set[str] = set()
    rejects: list[Reject] = []
    n_read = 0
    for row, (line, record) in enumerate(itertools.chain(head, records)):
        n_read = row + 1
        try:
            messages = parse_record(record, parser, fields, answer_optional=answer_optional)
        except FieldError as e:
            if isinstance(record, Unreadable):
                record = record.text
            reject = Reject(str(path), row, line, e.field, e.reason, record)
            if on_error == "fail":
                raise InputError(reject) from None
            rejects.append(reject)
            continue
        rid = record.get("id")
        ex_id = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else ""
        pending.append(Example(ex_id, messages, row, line, record if keep_records else None))
        if len(pending) == CHUNK:
            _settle(pending, builder, ids, notes, hashes)
    _settle(pending, builder, ids, notes, hashes)
    del head, hashes, ids
    return Dataset(
        str(path),
        fmt,
        container,
        builder.finish(),
        rejects,
        n_read,
        source.table,
        source.indent,
        source.encoding,
        notes,
        keep_records,
        stamp,
        hub,
        origin,
        fields,
    )


def as_dataset(data: Dataset | str | os.PathLike[str]) -> Dataset:
    """A data set as the Python API's `score` and `select` take it: a `Dataset` as it is, or a path (or hub
    id) read with `read`'s defaults, so that a missing file is a `MissingFileError` (a FileNotFoundError)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read(data)
    raise TypeError(f"expected a Dataset (isf.read(path)) or a path, got {type(data).__name__}")


def parse_record(
    record: Any, parser: Any, fields: Mapping[str, str] | None, *, answer_optional: bool = False
) -> tuple[Message, ...]:
    """A raw record's messages; a `FieldError` (field, reason) when it cannot be one (see `read` for
    `answer_optional`)."""
    if isinstance(record, Unreadable):
        raise FieldError(None, record.reason)
    if not isinstance(record, Mapping):
        raise FieldError(None, f"a record must be an object, got {type(record).__name__}")
    check_text(record)
    messages = parser(record, fields)
    check_conversation(messages, answer_optional=answer_optional)
    return tuple(messages)


def _settle(pending: list[Example], builder: Builder, ids: Counter[str], notes: Counter[str], hashes: set[str]) -> None:
    """Give a chunk of examples their ids and notes (counted on from earlier chunks) and move it to `builder`."""
    _assign_ids(pending, ids)
    notes_of(pending, notes, hashes)
    builder.extend(pending)
    pending.clear()


def notes_of(
    examples: Sequence[Example], notes: Counter[str] | None = None, seen: set[str] | None = None
) -> Counter[str]:
    """Trailing unanswered turns and exact duplicates (see `Dataset.notes`), added to `notes` (given the
    content hashes `seen` in earlier chunks) when given."""
    notes = Counter() if notes is None else notes
    seen = set() if seen is None else seen
    for ex in examples:
        if ex.messages[-1].role != "assistant":
            notes[TRAILING_TURN.format(role=ex.messages[-1].role)] += 1
        h = ex.content_hash
        if h in seen:
            notes[EXACT_DUPLICATE] += 1
        seen.add(h)
    return notes


def _assign_ids(examples: list[Example], seen: Counter[str] | None = None) -> None:
    """Content-derived ids where the record has none; repeats get a `~N` suffix so ids are unique (`seen`:
    the counts of earlier chunks)."""
    seen = Counter() if seen is None else seen
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
    to: str | None = None,
) -> None:
    """Write the records at input positions `rows` (in that order) to `path`, atomically.

    The container follows `path`'s extension; each record is the user's own, untouched (or, with `to`,
    converted to that format with its other fields kept: `convert.py`), plus the matching `scores`
    mapping's fields when given.
    """
    from . import convert

    container = container_of(path)
    convert.check_to(to)
    if dataset.table is not None and container in ("parquet", "hf") and to is None:
        _write_table(dataset, rows, path, container, scores)
        return
    records: Iterable[Any] = dataset.records(rows)
    if to is not None:
        records = convert.records(records, dataset.format, to, dataset.fields, dataset.path)
    if scores:
        records = (_with_scores(r, s) for r, s in zip(records, scores, strict=True))
    if container in ("parquet", "hf"):
        import pyarrow as pa

        records = list(records)
        keys = list(dict.fromkeys(k for r in records for k in r))  # every field, not just the first record's
        _save_table(pa.table({k: [r.get(k) for r in records] for k in keys}), path, container)
        return
    if container == "json":
        pieces = _json_array(records, dataset.json_indent if dataset.json_indent else 2)
    else:
        pieces = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if str(path) == STDOUT:
        write_stdout(pieces)
        return
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        out = _Gzip(f) if str(path).endswith(".gz") else f
        for piece in pieces:
            out.write(piece.encode("utf-8"))
        if isinstance(out, _Gzip):
            out.close()


def write_stdout(pieces: Iterable[str]) -> None:
    """Text pieces to standard output as UTF-8, whatever the terminal's encoding (`-o -`)."""
    import sys

    sys.stdout.flush()
    out = sys.stdout.buffer
    for piece in pieces:
        out.write(piece.encode("utf-8"))
    out.flush()


class _Gzip:
    """Writes, a piece at a time, the bytes `gzip.compress(data, mtime=0)` gives for all of them (no
    name or time in the header: the same data, the same file)."""

    def __init__(self, f: Any):
        self.f, self.crc, self.size = f, 0, 0
        self.z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        f.write(gzip.compress(b"", mtime=0)[:10])

    def write(self, data: bytes) -> None:
        self.crc, self.size = zlib.crc32(data, self.crc), self.size + len(data)
        self.f.write(self.z.compress(data))

    def close(self) -> None:
        self.f.write(self.z.flush() + struct.pack("<LL", self.crc, self.size & 0xFFFFFFFF))


def _json_array(records: Iterable[Any], indent: int) -> Iterator[str]:
    """`json.dumps(list(records), ensure_ascii=False, indent=indent) + "\n"`, a record at a time."""
    pad = " " * indent
    sep = "[\n"
    for r in records:
        yield sep + pad + json.dumps(r, ensure_ascii=False, indent=indent).replace("\n", "\n" + pad)
        sep = ",\n"
    yield "[]\n" if sep == "[\n" else "\n]\n"


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
    datasets = require("datasets", "writing a datasets folder", extra="hf")

    with atomic_path(path, directory=True) as tmp:
        datasets.Dataset(table).save_to_disk(str(tmp))


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(text: str) -> str:
    """JSON text with each lone surrogate written as its `\\uXXXX` escape, which reads back the same."""
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_rejects(rejects: Sequence[Reject], path: str | Path) -> None:
    """One JSON line per rejected row: file, row, line, field, reason and the record (a lone surrogate in
    it, the reason it was rejected, escaped as in the input)."""
    text = "".join(_escape_surrogates(json.dumps(r.as_dict(), ensure_ascii=False, default=str)) + "\n" for r in rejects)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
