"""A scorer's results put in the data set's order as they arrive, without holding them twice.

The results come in chunks (the cache's batches, then each chunk the scorer yields); for each row of the
data set the last result with its content hash wins (as `scoring.cache.last_wins`). A wide fixed-size list
of numbers (128 MinHash values a row, 0.5 GB at a million rows) is written straight into one preallocated
numpy buffer as each chunk arrives, and the chunk is let go: the column is never held as chunks and then
copied again. Narrow columns keep each chunk's matching rows and are taken in order at the end.

Content hashes are looked up in a sorted numpy index of the data set's hashes (`HashIndex`), built once and
shared by every scorer: no Python string per row, no hash table rebuilt per chunk.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _keys(strings: Any, width: int | None = None) -> np.ndarray:
    """An Arrow string array as numpy bytes of one width: without a copy when every string has the same
    length (content hashes), else encoded and padded. A string longer than `width` cannot match: None."""
    import pyarrow as pa

    arr = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    if arr.null_count:
        raise ValueError("a content hash is missing (null)")
    n = len(arr)
    if n and arr.type == pa.string():  # int32 offsets: one length for all is a fixed width, read in place
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
        size = int(offsets[1] - offsets[0])
        if size and (width is None or size == width) and (np.diff(offsets) == size).all():
            data = np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=n * size, offset=int(offsets[0]))
            return data.view(f"S{size}")
    encoded = [s.encode("utf-8") for s in arr.to_pylist()]
    widest = max(map(len, encoded), default=1) or 1
    if width is not None and widest > width:
        return np.array([b"" if len(s) > width else s for s in encoded], dtype=f"S{width}")
    return np.array(encoded, dtype=f"S{width or widest}")


class HashIndex:
    """The data set's content hashes (an Arrow string array, in row order), sorted once for lookups."""

    def __init__(self, hashes: Any) -> None:
        keys = _keys(hashes)
        self.n = len(keys)
        self.width = keys.dtype.itemsize if self.n else 1
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]

    def lookup(self, hashes: Any) -> tuple[np.ndarray, np.ndarray]:
        """`(rows, at)`: every data set row holding one of `hashes`, and the position in `hashes` of its
        hash (a hash held by several rows gives each of them; a hash not in the data set gives none)."""
        if not len(hashes) or not self.n:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        keys = _keys(hashes, self.width)
        lo = np.searchsorted(self.sorted, keys, side="left")
        hi = np.searchsorted(self.sorted, keys, side="right")
        count = hi - lo
        at = np.repeat(np.arange(len(keys), dtype=np.int64), count)
        starts = np.repeat(lo - np.cumsum(count) + count, count)  # each hit's offset within its run of equals
        rows = self.order[starts + np.arange(len(at), dtype=np.int64)]
        return rows.astype(np.int64, copy=False), at


def _wide(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_fixed_size_list(t) and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type))


class Assembly:
    """One scorer's columns (`schema`, without `content_hash`) for the rows of `index`, filled by `add`."""

    def __init__(self, index: HashIndex, schema: Any) -> None:
        self.index = index
        self.schema = schema
        n = index.n
        self.source = np.full(n, -1, dtype=np.int64)  # each row's position in the narrow chunks laid end to end
        self._narrow_names = [f.name for f in schema if not _wide(f.type)]
        self._narrow: list[Any] = []
        self._laid = 0
        self._wide: dict[str, tuple[np.ndarray, np.ndarray]] = {
            f.name: (np.empty((n, f.type.list_size), f.type.value_type.to_pandas_dtype()), np.ones(n, bool))
            for f in schema
            if _wide(f.type)
        }

    @property
    def covered(self) -> np.ndarray:
        """Rows that got a result."""
        return self.source >= 0

    def add(self, chunk: Any) -> None:
        """Put a table (`content_hash` and the scorer's columns) in place; a later result wins."""
        rows, at = self.index.lookup(chunk.column("content_hash"))
        if not len(rows):
            return
        inorder = len(at) == chunk.num_rows and bool((np.diff(at) == 1).all()) and (not len(at) or at[0] == 0)
        part = chunk.select(self._narrow_names)
        self._narrow.append(part if inorder else part.take(at))
        self.source[rows] = self._laid + np.arange(len(rows), dtype=np.int64)
        self._laid += len(rows)
        for name, (buffer, valid) in self._wide.items():
            column = chunk.column(name)
            arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
            d = arr.type.list_size
            values = arr.values.slice(arr.offset * d, len(arr) * d)
            whole = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), bool)
            if values.null_count:  # a null row's items are null too: fine; a row missing some items is not
                items = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), bool).reshape(len(arr), d)
                if not items[whole].all():
                    raise ValueError(f"column {name!r} holds a list with a missing value; a whole row may be null")
                values = values.fill_null(0)
            buffer[rows] = values.to_numpy(zero_copy_only=False).reshape(len(arr), d)[at]
            valid[rows] = whole[at]

    def columns(self) -> dict[str, Any]:
        """The scorer's columns in row order (every row must be covered); the chunks are let go."""
        import pyarrow as pa

        if not self.covered.all():
            raise ValueError("some rows got no result")
        out: dict[str, Any] = {}
        if self._narrow_names:
            empty = pa.schema([self.schema.field(name) for name in self._narrow_names]).empty_table()
            laid = pa.concat_tables([empty, *self._narrow], promote_options="permissive").combine_chunks()
            self._narrow = []
            identity = laid.num_rows == self.index.n and bool((self.source == np.arange(self.index.n)).all())
            taken = laid if identity else laid.take(pa.array(self.source, pa.int64()))
            out.update({name: taken.column(name).combine_chunks() for name in self._narrow_names})
        for name, (buffer, valid) in self._wide.items():
            t = self.schema.field(name).type
            mask = None if valid.all() else pa.array(~valid)
            out[name] = pa.FixedSizeListArray.from_arrays(pa.array(buffer.reshape(-1)), type=t, mask=mask)
        self._wide = {}
        return {f.name: out[f.name] for f in self.schema}
