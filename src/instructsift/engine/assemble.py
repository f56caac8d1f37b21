"""A scorer's result chunks put in the data set's order, without a second full copy of a wide column.

The chunks (the cached rows, then each chunk the scorer yielded) are laid end to end; for each row of the
data set the last chunk row with its content hash wins (as `scoring.cache.last_wins`). Narrow columns
are taken as before. A wide fixed-size list of numbers (128 MinHash values a row, 0.5 GB at a million
rows) is written into one preallocated numpy buffer a chunk at a time, each chunk let go once copied:
the column is held about once, not twice (joined, then taken) or three times.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def last_positions(parts: list[Any], hashes: Any) -> np.ndarray:
    """For each of `hashes` (an Arrow string array), the position, in `parts` laid end to end, of the last
    row with that content hash; -1 where there is none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = [c for p in parts for c in p.column("content_hash").chunks]
    laid = pa.chunked_array(chunks, pa.string()).combine_chunks()  # the hashes only: 36 MB at 1M rows
    n = len(laid)
    backwards = pc.index_in(hashes, value_set=laid.take(pa.array(np.arange(n - 1, -1, -1, dtype=np.int64))))
    at = np.asarray(backwards.fill_null(n).to_numpy(zero_copy_only=False), dtype=np.int64)
    return (n - 1) - at


def _wide(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_fixed_size_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))


def in_order(parts: list[Any], at: np.ndarray, names: list[str]) -> dict[str, Any]:
    """The columns `names` of `parts` (Arrow tables; the list is emptied, so that each chunk can be let go)
    taken at `at` (from `last_positions`, no -1 left) as Arrow arrays."""
    import pyarrow as pa

    types = {name: parts[0].schema.field(name).type for name in names}
    batches = [b for p in parts for b in p.to_batches()]
    parts.clear()
    columns = {name: [b.column(name) for b in batches] for name in names}
    lengths = [b.num_rows for b in batches]
    del batches
    identity = len(at) == sum(lengths) and bool(np.array_equal(at, np.arange(len(at))))
    whole = identity and len(lengths) == 1
    out: dict[str, Any] = {}
    for name in sorted(names, key=lambda n: _wide(types[n])):  # the narrow columns first
        arrays = columns.pop(name)
        if whole:  # in order, in one chunk: the usual case after a merged cache, no copy
            out[name] = arrays[0]
        elif _wide(types[name]) and not any(a.null_count or a.values.null_count for a in arrays):
            out[name] = _fill(arrays, lengths, at, types[name])
        else:
            chunked = pa.chunked_array(arrays, types[name])
            del arrays
            joined = chunked.combine_chunks()
            del chunked
            out[name] = joined if identity else joined.take(pa.array(at, pa.int64()))
    return {name: out[name] for name in names}


def _fill(arrays: list[Any], lengths: list[int], at: np.ndarray, t: Any) -> Any:
    """A fixed-size list column without nulls filled into one numpy buffer, each of `arrays` dropped
    (set to None) once its rows are copied."""
    import pyarrow as pa

    d = t.list_size
    out = np.empty((len(at), d), dtype=t.value_type.to_pandas_dtype())
    order = np.argsort(at, kind="stable")
    wanted = at[order]
    start = 0
    for k, n in enumerate(lengths):
        lo, hi = np.searchsorted(wanted, [start, start + n])
        if hi > lo:
            a = arrays[k]
            values = a.values.slice(a.offset * d, n * d).to_numpy(zero_copy_only=False).reshape(n, d)
            out[order[lo:hi]] = values[wanted[lo:hi] - start]
            del a, values
        arrays[k] = None
        start += n
    return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1)), type=t)
