"""Drop exact and near duplicates, keeping the first row of each group.

Reads the fingerprints of `scoring.dedup.MinHashSignature`: rows with the same `text_hash` are exact
duplicates (same words up to case, spacing and punctuation); among the rest, `datasketch`'s MinHash
LSH index proposes candidate pairs and a row is a near duplicate of an earlier kept row when their
estimated Jaccard similarity (the share of equal MinHash values) is at least `threshold`. Rows are
visited in input order among those still kept, so a row is only ever dropped for one that stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.errors import MissingColumnError, OptionError
from ..registry import register
from .base import Selection


def signatures(table: Any, name: str = "minhash") -> tuple[np.ndarray, np.ndarray]:
    """`(matrix, valid)`: the (n, num_perm) uint32 MinHash values and a mask of the non-null rows.

    Takes the scorer's `fixed_size_list<uint32>` column, and plain lists of one length (a score table
    read back from JSON Lines)."""
    import pyarrow as pa

    if name not in table.column_names:
        raise MissingColumnError(f"the score table has no column {name!r}: run the minhash scorer first")
    col = table.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()  # one chunk: no copy (at 1M, 0.5 GB)
    n = len(arr)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        flat = arr.values.slice(arr.offset * d, n * d)
        flat = flat.fill_null(0) if flat.null_count else flat  # fill_null copies even without nulls (0.5 GB)
        return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.uint32).reshape(n, d), valid
    rows = arr.to_pylist()
    lengths = {len(r) for r in rows if r is not None}
    if len(lengths) > 1:
        raise OptionError(f"column {name!r} mixes signatures of {sorted(lengths)} permutations")
    out = np.zeros((n, lengths.pop() if lengths else 0), dtype=np.uint32)
    for i, r in enumerate(rows):
        if r is not None:
            out[i] = r
    return out, valid


@register("select", "dedup")
@dataclass
class Dedup:
    """Keep the first of each group of exact (`text_hash`) and near (MinHash LSH, Jaccard >= `threshold`)
    duplicates among the kept rows. Reasons: `exact duplicate (of row N)`, `near duplicate (of row N, ...)`."""

    threshold: float = 0.7
    exact: bool = True
    near: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise OptionError(f"the near-duplicate threshold must be in (0, 1], got {self.threshold}")

    def describe(self) -> str:
        kinds = [k for k, on in (("exact", self.exact), (f"near (Jaccard >= {self.threshold:g})", self.near)) if on]
        return f"drop {' and '.join(kinds)} duplicates, keeping the first"

    def apply(self, table: Any, selection: Selection) -> None:
        if self.exact:
            if "text_hash" not in table.column_names:
                raise MissingColumnError("the score table has no column 'text_hash': run the minhash scorer first")
            dups, firsts = repeats(table.column("text_hash"), selection.kept, nulls_match=False)
            selection.drop(dups, "exact duplicate", [f"of row {r}" for r in row_values(table, firsts)])
        if self.near:
            self._near(table, selection)

    def _near(self, table: Any, selection: Selection) -> None:
        """MinHash LSH with datasketch's bands (`MinHashLSH`'s b x r for this threshold and num_perm): a
        candidate is an earlier kept row equal to this one on every value of some band. The bands are
        hashed in numpy and numbered among the kept rows; a row that shares no band with another kept row
        can neither have nor be a candidate, so only the others are visited, indexed in plain lists by
        band number: at a million rows many times faster and smaller than datasketch's index, with the
        same candidates."""
        from datasketch import MinHashLSH

        sigs, valid = signatures(table)
        if sigs.shape[1] == 0:
            return
        lsh = MinHashLSH(threshold=self.threshold, num_perm=sigs.shape[1])
        kept = selection.kept
        at, codes, groups = band_groups(sigs, kept[valid[kept]], lsh.hashranges)
        index: list[list[Any]] = [[None] * g for g in groups]  # per band and group: the indexed row(s)
        dropped = np.empty(len(at), dtype=np.int64)
        of = np.empty(len(at), dtype=np.int64)
        sim = np.empty(len(at), dtype=np.float64)
        n = 0
        for start in range(0, len(at), 4096):  # one block of rows as Python lists at a time
            block = zip(at[start : start + 4096].tolist(), codes[start : start + 4096].tolist(), strict=True)
            for i, mine in block:
                found: set[int] = set()
                for band, g in zip(index, mine, strict=True):
                    if g >= 0:
                        hit = band[g]
                        if hit is not None:
                            found.update(hit) if isinstance(hit, list) else found.add(hit)
                if found:
                    cand = np.fromiter(found, dtype=np.int64, count=len(found))
                    sims = (sigs[cand] == sigs[i]).mean(axis=1)
                    ok = sims >= self.threshold
                    if ok.any():
                        k = int(np.argmin(np.where(ok, cand, np.iinfo(np.int64).max)))
                        dropped[n], of[n], sim[n] = i, cand[k], sims[k]
                        n += 1
                        continue
                for band, g in zip(index, mine, strict=True):
                    if g >= 0:
                        hit = band[g]
                        if hit is None:
                            band[g] = i  # one row: an int, not a list (most groups)
                        elif isinstance(hit, list):
                            hit.append(i)
                        else:
                            band[g] = [hit, i]
        del at, codes, index
        details: list[str] = []
        for start in range(0, n, 65536):  # no list of all the row numbers and similarities at once
            end = min(start + 65536, n)
            rows = row_values(table, of[start:end])
            details += [f"of row {r}, Jaccard ~ {s:.2f}" for r, s in zip(rows, sim[start:end].tolist(), strict=True)]
        selection.drop(dropped[:n], "near duplicate", details)


# The step `select --dedup-exact` (`recipe.from_method`) puts first: repeats dropped before any scoring.
EXACT_DEDUP_STEP: dict[str, Any] = {"select": "exact_dedup"}


@register("select", "exact_dedup")
@dataclass
class ExactDedup:
    """Keep the first of each group of rows with the same content: the same roles and texts, as scorers
    see them (the examples' `content_hash`; ids, positions and other record fields do not count). Needs
    no scorer: `instructsift.select` adds the `content_hash` column from the data set. Rows are visited in
    input order among those still kept. Reason: `exact duplicate (of row N)`."""

    dataset_columns = ("content_hash",)  # columns `api.select` adds to the table from the data set

    def describe(self) -> str:
        return "drop exact duplicates (same roles and texts), keeping the first"

    def apply(self, table: Any, selection: Selection) -> None:
        if "content_hash" not in table.column_names:
            raise KeyError("the score table has no column 'content_hash': select with instructsift.select")
        dups, firsts = repeats(table.column("content_hash"), selection.kept, nulls_match=True)
        selection.drop(dups, "exact duplicate", [f"of row {r}" for r in row_values(table, firsts)])


def repeats(keys: Any, kept: np.ndarray, nulls_match: bool) -> tuple[np.ndarray, np.ndarray]:
    """`(dups, firsts)`: the positions in `kept` (ascending) whose key an earlier one of them has, and
    for each the first of them with that key. Null keys match each other only when `nulls_match`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(keys, null_encoding="encode" if nulls_match else "mask")  # chunks share one dictionary
    chunks = [c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in getattr(enc, "chunks", [enc])]
    group = np.concatenate(chunks)[kept] if chunks else np.empty(0, dtype=np.int32)
    del enc, chunks
    pa.default_memory_pool().release_unused()  # the encoder's ~100 MB at 1M rows, else held on through the LSH loop
    has = np.flatnonzero(group >= 0)
    _, first, inverse = np.unique(group[has], return_index=True, return_inverse=True)
    first = has[first][inverse]  # each row's first row with its key (as places in kept)
    dup = first != has
    return kept[has[dup]], kept[first[dup]]


def row_values(table: Any, positions: np.ndarray) -> list[Any]:
    """The `row` column's values at `positions` (the data set's row numbers, for reasons)."""
    return table.column("row").take(positions).to_pylist()


def band_groups(sigs: np.ndarray, rows: np.ndarray, ranges: Any) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """`(at, codes, groups)` for the LSH bands of `rows` (positions in `sigs`, in order): the rows that
    share some band with another of them, `codes[k, b]` the group number of row `at[k]`'s band b among
    the rows sharing it (-1: no other row has this band) and the number of groups in each band."""
    codes = np.empty((len(ranges), len(rows)), dtype=np.int32)  # band-major: each band's row is compacted in place
    at = np.empty(len(rows), dtype=np.int64)  # before the temporaries (a buffer after them keeps them in RSS)
    groups = []
    for b, (lo, hi) in enumerate(ranges):
        _, inverse, counts = np.unique(band_key(sigs, rows, lo, hi), return_inverse=True, return_counts=True)
        shared = counts >= 2
        number = np.where(shared, np.cumsum(shared) - 1, -1).astype(np.int32)
        codes[b] = number[inverse]
        groups.append(int(shared.sum()))
    some = (codes >= 0).any(axis=0)
    m = int(some.sum())
    for b in range(len(ranges)):
        codes[b, :m] = codes[b, some]
    at[:m] = rows[some]
    return at[:m], codes[:, :m].T, groups


def band_key(sigs: np.ndarray, rows: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """uint64 keys of `rows`' values `lo:hi` (one band): a 64-bit FNV-1a-style hash (equal bands, equal keys)."""
    prime = np.uint64(1099511628211)
    h = np.full(len(rows), 14695981039346656037, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(lo, hi):
            h = (h ^ sigs[rows, k].astype(np.uint64)) * prime
    return h
