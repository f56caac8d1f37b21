"""Examples held as Arrow columns: a million rows cost their texts' bytes, not a Python object per text.

`ExampleTable` is a `Sequence[Example]`: indexing, slicing and iterating give `Example`s, made a chunk
at a time from the columns (the chunk last made is kept, so walking the rows in order makes each once).
Code that needs only keys reads columns (`key_column`) and subsets stay Arrow (`take`). The columns: `row`,
`line` (null for tables), `id`, `content_hash` and `messages` (a list of `role`, `content`, `context`
structs); raw records, when held, sit in a plain list beside them.

The key columns stay in memory; the messages (the texts, ~0.7 GB at a million rows) stay in memory up to
`SPILL_BYTES`, and beyond it go to an unlinked temporary Arrow IPC file (in `TMPDIR`) as they are made,
each batch read back when its `Example`s are made: the texts of a large data set cost disk, not memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from .example import Example, Message

CHUNK = 4096  # rows per record batch, and per chunk of `Example`s made at once
SPILL_BYTES = 128 * 2**20  # messages beyond this many bytes of Arrow buffers go to a temporary file
KEYS = ("row", "line", "id", "content_hash")


def _schema() -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("context", pa.string())])
    return pa.schema(
        [
            ("row", pa.int64()),
            ("line", pa.int64()),
            ("id", pa.string()),
            ("content_hash", pa.string()),
            ("messages", pa.list_(message)),
        ]
    )


def _batch(examples: Sequence[Example]) -> Any:
    import pyarrow as pa

    schema = _schema()
    return pa.RecordBatch.from_arrays(
        [
            pa.array([ex.row for ex in examples], pa.int64()),
            pa.array([ex.line for ex in examples], pa.int64()),
            pa.array([ex.id for ex in examples], pa.string()),
            pa.array([ex.content_hash for ex in examples], pa.string()),
            pa.array(
                [[(m.role, m.content, m.context) for m in ex.messages] for ex in examples],
                schema.field("messages").type,
            ),
        ],
        schema=schema,
    )


class _Store(Sequence[Any]):
    """The table's record batches: key columns in memory; messages in memory until they pass `SPILL_BYTES`,
    then all of them in a temporary Arrow IPC file, read back one batch at a time."""

    def __init__(self) -> None:
        self._keys: list[Any] = []
        self._texts: list[Any] = []  # in memory, until spilled
        self._held = 0
        self.nbytes = 0
        self._writer: Any = None
        self._reader: Any = None

    @classmethod
    def of(cls, batches: Iterable[Any]) -> _Store:
        store = cls()
        for batch in batches:
            store.append(batch)
        store.finish()
        return store

    def append(self, batch: Any) -> None:
        self._keys.append(batch.select(list(KEYS)))
        texts = batch.select(["messages"])
        self.nbytes += batch.nbytes
        if self._writer is None and self._held + texts.nbytes > SPILL_BYTES:
            self._spill(texts.schema)
        if self._writer is not None:
            self._writer.write_batch(texts)
        else:
            self._texts.append(texts)
            self._held += texts.nbytes

    def _spill(self, schema: Any) -> None:
        import pyarrow as pa

        fd, path = tempfile.mkstemp(prefix="instructsift-examples-", suffix=".arrow")
        os.close(fd)
        self._path = path
        self._sink = pa.OSFile(path, "wb")
        self._writer = pa.ipc.new_file(self._sink, schema)
        for texts in self._texts:
            self._writer.write_batch(texts)
        self._texts, self._held = [], 0

    def finish(self) -> None:
        """No more batches: a spilled file is closed, opened for reading and unlinked (gone with the process)."""
        import pyarrow as pa

        if self._writer is not None and self._reader is None:
            self._writer.close()
            self._sink.close()
            self._reader = pa.ipc.open_file(pa.OSFile(self._path, "rb"))
            try:
                os.unlink(self._path)
            except OSError:  # pragma: no cover - Windows keeps an open file: removed at exit instead
                import atexit

                atexit.register(lambda p=self._path: os.path.exists(p) and os.unlink(p))

    @property
    def spilled(self) -> bool:
        return self._writer is not None

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, k: int) -> Any:  # type: ignore[override]
        import pyarrow as pa

        keys = self._keys[k]
        texts = self._reader.get_batch(k) if self._reader is not None else self._texts[k]
        return pa.RecordBatch.from_arrays([*keys.columns, texts.column(0)], schema=_schema())

    def column(self, name: str) -> list[Any]:
        """A key column's arrays, one per batch (from memory)."""
        return [b.column(name) for b in self._keys]


class _Examples(Sequence[Example]):
    """A sequence of examples made when asked for: one by its index (`_one`), a slice as a list."""

    def _one(self, i: int) -> Example:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        return self._one(i)


class ExampleTable(_Examples):
    """Examples as Arrow record batches of `CHUNK` rows (the last may hold fewer), plus their raw records
    (a list, or None when they are not held)."""

    def __init__(self, batches: Sequence[Any], records: list[Any] | None = None):
        self._batches = batches if isinstance(batches, _Store) else _Store.of(batches)
        self._records = records
        lengths = [len(b) for b in self._batches.column("row")]
        self._n = sum(lengths)
        self._made: tuple[int, list[Example]] | None = None
        if any(n != CHUNK for n in lengths[:-1]):
            raise ValueError(f"every batch but the last must hold {CHUNK} rows")

    @classmethod
    def of(cls, examples: Iterable[Example]) -> ExampleTable:
        """The table of `examples` (their records held when any of them has one)."""
        builder = Builder()
        builder.extend(examples)
        return builder.finish()

    def __len__(self) -> int:
        return self._n

    def _chunk(self, k: int) -> list[Example]:
        if self._made is not None and self._made[0] == k:
            return self._made[1]
        batch = self._batches[k]
        base = k * CHUNK
        records = self._records
        cols = [batch.column(i).to_pylist() for i in range(4)]
        made = []
        for j, (row, line, ex_id, h, messages) in enumerate(zip(*cols, batch.column(4).to_pylist(), strict=True)):
            msgs = tuple(Message(m["role"], m["content"], m["context"]) for m in messages)
            ex = Example(ex_id, msgs, row, line, None if records is None else records[base + j])
            ex._hash = h
            made.append(ex)
        self._made = (k, made)
        return made

    def _one(self, i: int) -> Example:
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("example index out of range")
        return self._chunk(i // CHUNK)[i % CHUNK]

    def __iter__(self) -> Iterator[Example]:
        for k in range(len(self._batches)):
            yield from self._chunk(k)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ExampleTable({self._n} examples)"

    def column(self, name: str) -> Any:
        """One key column (`row`, `line`, `id`, `content_hash`) as an Arrow array."""
        import pyarrow as pa

        arrays = self._batches.column(name)
        if not arrays:
            return pa.array([], _schema().field(name).type)
        return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)

    def take(self, positions: Sequence[int]) -> ExampleTable:
        """The examples at `positions`, in that order, still as Arrow."""
        import numpy as np

        at = np.asarray(positions, dtype=np.int64)
        if len(at) and (at.min() < -self._n or at.max() >= self._n):
            raise IndexError("example index out of range")
        at = np.where(at < 0, at + self._n, at)
        batches = _Store()  # built a batch at a time: a large subset spills as the whole does
        for lo in range(0, len(at), CHUNK):
            batches.append(self._gather(at[lo : lo + CHUNK]))
        batches.finish()
        records = None if self._records is None else [self._records[i] for i in at.tolist()]
        return ExampleTable(batches, records)

    def _gather(self, part: Any) -> Any:
        """One record batch of the rows at `part` (at most `CHUNK` positions), taken batch by batch: a take
        over the whole table would join every batch's texts first."""
        import numpy as np
        import pyarrow as pa

        order = np.argsort(part, kind="stable")
        ordered = part[order]
        owner = ordered // CHUNK
        pieces = [self._batches[k].take(pa.array(ordered[owner == k] - k * CHUNK)) for k in np.unique(owner).tolist()]
        joined = pa.Table.from_batches(pieces, _schema()).combine_chunks()
        if not np.array_equal(order, np.arange(len(order))):
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            joined = joined.take(pa.array(back))
        return joined.to_batches()[0]

    @property
    def records(self) -> list[Any] | None:
        """The raw records, in the examples' order, or None when they are not held."""
        return self._records

    @property
    def nbytes(self) -> int:
        """The Arrow buffers' size (records, when held, not counted)."""
        return self._batches.nbytes

    @property
    def spilled(self) -> bool:
        """Whether the messages sit in a temporary file (more than `SPILL_BYTES` of them)."""
        return self._batches.spilled


class ExampleView(_Examples):
    """The examples of a sequence at `positions`, made when asked for (nothing is copied)."""

    def __init__(self, base: Sequence[Example], positions: Sequence[int]):
        self._base, self._at = base, positions

    def __len__(self) -> int:
        return len(self._at)

    def _one(self, i: int) -> Example:
        return self._base[self._at[i]]

    def __iter__(self) -> Iterator[Example]:
        return (self._base[j] for j in self._at)


class Builder:
    """Collects examples into an `ExampleTable` a chunk at a time: no more than `CHUNK` `Example`s are held."""

    def __init__(self) -> None:
        self._batches = _Store()
        self._pending: list[Example] = []
        self._records: list[Any] = []
        self._any_record = False

    def append(self, ex: Example) -> None:
        self._pending.append(ex)
        self._records.append(ex.record)
        self._any_record = self._any_record or ex.record is not None
        if len(self._pending) == CHUNK:
            self._batches.append(_batch(self._pending))
            self._pending = []

    def extend(self, examples: Iterable[Example]) -> None:
        for ex in examples:
            self.append(ex)

    def finish(self) -> ExampleTable:
        if self._pending:
            self._batches.append(_batch(self._pending))
            self._pending = []
        self._batches.finish()
        return ExampleTable(self._batches, self._records if self._any_record else None)


def key_column(examples: Sequence[Example], name: str, at: Sequence[int] | None = None) -> Any:
    """A key column (`row`, `line`, `id`, `content_hash`) of any sequence of examples, as an Arrow array
    (only the positions `at`, in that order, when given)."""
    import pyarrow as pa

    if isinstance(examples, ExampleTable):
        values = examples.column(name)
    else:
        values = pa.array([getattr(ex, name) for ex in examples], _schema().field(name).type)
    return values if at is None else values.take(pa.array(at, pa.int64()))


def take(examples: Sequence[Example], positions: Sequence[int]) -> Sequence[Example]:
    """The examples at `positions`: an `ExampleTable` stays one, a list stays a list."""
    if isinstance(examples, ExampleTable):
        return examples.take(positions)
    return [examples[i] for i in positions]
