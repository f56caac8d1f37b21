"""Examples held as Arrow columns: a million rows cost their texts' bytes, not a Python object per text.

`ExampleTable` is a `Sequence[Example]`: indexing, slicing and iterating give `Example`s, made a chunk
at a time from the columns (the chunk last made is kept, so walking the rows in order makes each once).
Code that needs only keys reads columns (`key_column`) and subsets stay Arrow (`take`). The columns: `row`,
`line` (null for tables), `id`, `content_hash` and `messages` (a list of `role`, `content`, `context`
structs); raw records, when held, sit in a plain list beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from .example import Example, Message

CHUNK = 4096  # rows per record batch, and per chunk of `Example`s made at once


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


class ExampleTable(Sequence[Example]):
    """Examples as Arrow record batches of `CHUNK` rows (the last may hold fewer), plus their raw records
    (a list, or None when they are not held)."""

    def __init__(self, batches: list[Any], records: list[Any] | None = None):
        self._batches = batches
        self._records = records
        self._n = sum(b.num_rows for b in batches)
        self._made: tuple[int, list[Example]] | None = None
        if any(b.num_rows != CHUNK for b in batches[:-1]):
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

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
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

        arrays = [b.column(name) for b in self._batches]
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
        batches = [self._gather(at[lo : lo + CHUNK]) for lo in range(0, len(at), CHUNK)]
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
        return sum(b.nbytes for b in self._batches)


class ExampleView(Sequence[Example]):
    """The examples of a sequence at `positions`, made when asked for (nothing is copied)."""

    def __init__(self, base: Sequence[Example], positions: Sequence[int]):
        self._base, self._at = base, positions

    def __len__(self) -> int:
        return len(self._at)

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self._base[j] for j in self._at[i]]
        return self._base[self._at[i]]

    def __iter__(self) -> Iterator[Example]:
        return (self._base[j] for j in self._at)


class Builder:
    """Collects examples into an `ExampleTable` a chunk at a time: no more than `CHUNK` `Example`s are held."""

    def __init__(self) -> None:
        self._batches: list[Any] = []
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
