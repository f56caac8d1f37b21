"""Rows of an Arrow table as dicts, a chunk at a time; a table with a string that is not valid UTF-8 is read
with strings as bytes and decoded value by value, so that only the rows holding bad text are rejected
(by `records.check_text`, naming the field). Read by `io` (Parquet, `datasets` folders) and `hub`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


def rows_of(table: Any, rows: Sequence[int] | None = None, chunk: int = 10_000) -> Iterator[dict[str, Any]]:
    """The rows of an Arrow table (those at positions `rows`, in that order, when given), a chunk at a time."""
    import pyarrow as pa

    n = table.num_rows if rows is None else len(rows)
    for start in range(0, n, chunk):
        if rows is None:
            part = table.slice(start, chunk)
        else:
            part = table.take(pa.array(rows[start : start + chunk], pa.int64()))
        yield from table_rows(part)


def table_rows(table: Any) -> list[dict[str, Any]]:
    """The rows of an Arrow table. A string that is not valid UTF-8 (a lone surrogate written as CESU-8
    bytes, say) would fail the whole table: such tables are read with strings as bytes, decoded one by
    one keeping what cannot be decoded as lone surrogates, so that `check_text` rejects just those rows
    and names the field."""
    try:
        return table.to_pylist()
    except UnicodeDecodeError:
        pass
    import pyarrow as pa

    schema = table.schema
    raw = table.cast(pa.schema([f.with_type(_as_binary(f.type)) for f in schema])).to_pylist()
    return [{f.name: _decode(r[f.name], f.type) for f in schema} for r in raw]


def _as_binary(t: Any) -> Any:
    """`t` with every string type (also inside lists, structs, maps, dictionaries) made binary."""
    import pyarrow as pa

    if pa.types.is_string(t):
        return pa.binary()
    if pa.types.is_large_string(t):
        return pa.large_binary()
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_as_binary(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_as_binary(t.key_type), _as_binary(t.item_type))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(t.value_field.with_type(_as_binary(t.value_type)), t.list_size)
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_as_binary(t.value_type)))
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_as_binary(t.value_type)))
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, _as_binary(t.value_type))
    return t


def _decode(value: Any, t: Any) -> Any:
    """A value read with `_as_binary(t)` back as `t` would give it; bad UTF-8 kept as lone surrogates."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        for errors in ("strict", "surrogatepass", "surrogateescape"):
            try:
                return value.decode("utf-8", errors)
            except UnicodeDecodeError:
                continue
    if pa.types.is_struct(t):
        return {t.field(i).name: _decode(value[t.field(i).name], t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_map(t):
        return [(_decode(k, t.key_type), _decode(v, t.item_type)) for k, v in value]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return [_decode(v, t.value_type) for v in value]
    return value
