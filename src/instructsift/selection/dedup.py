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
        flat = arr.values.slice(arr.offset * d, n * d).fill_null(0)
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
        rows = table.column("row").to_pylist()
        if self.exact:
            if "text_hash" not in table.column_names:
                raise MissingColumnError("the score table has no column 'text_hash': run the minhash scorer first")
            keys = table.column("text_hash").to_pylist()
            first: dict[str, int] = {}
            for i in selection.kept.tolist():
                if keys[i] is None:
                    continue
                j = first.setdefault(keys[i], i)
                if j != i:
                    selection.drop([i], "exact duplicate", f"of row {rows[j]}")
        if self.near:
            self._near(table, selection, rows)

    def _near(self, table: Any, selection: Selection, rows: list[int]) -> None:
        """MinHash LSH with datasketch's bands (`MinHashLSH`'s b x r for this threshold and num_perm): a
        candidate is an earlier kept row equal to this one on every value of some band. The bands are
        hashed in numpy and indexed in plain dicts, which at a million rows is many times faster and
        smaller than datasketch's index, with the same candidates."""
        from datasketch import MinHashLSH

        sigs, valid = signatures(table)
        if sigs.shape[1] == 0:
            return
        lsh = MinHashLSH(threshold=self.threshold, num_perm=sigs.shape[1])
        keys = band_keys(sigs, lsh.hashranges)
        index: list[dict[int, Any]] = [{} for _ in lsh.hashranges]
        for i in selection.kept.tolist():
            if not valid[i]:
                continue
            mine = keys[i].tolist()
            found: set[int] = set()
            for band, key in zip(index, mine, strict=True):
                hit = band.get(key)
                if hit is not None:
                    found.update(hit) if isinstance(hit, list) else found.add(hit)
            if found:
                cand = np.fromiter(found, dtype=np.int64, count=len(found))
                sims = (sigs[cand] == sigs[i]).mean(axis=1)
                ok = sims >= self.threshold
                if ok.any():
                    at = int(np.argmin(np.where(ok, cand, np.iinfo(np.int64).max)))
                    j = int(cand[at])
                    selection.drop([i], "near duplicate", f"of row {rows[j]}, Jaccard ~ {float(sims[at]):.2f}")
                    continue
            for band, key in zip(index, mine, strict=True):
                hit = band.get(key)
                if hit is None:
                    band[key] = i  # one row: an int, not a list (most keys)
                elif isinstance(hit, list):
                    hit.append(i)
                else:
                    band[key] = [hit, i]


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
        rows = table.column("row").to_pylist()
        keys = table.column("content_hash").to_pylist()
        first: dict[str, int] = {}
        for i in selection.kept.tolist():
            j = first.setdefault(keys[i], i)
            if j != i:
                selection.drop([i], "exact duplicate", f"of row {rows[j]}")


def band_keys(sigs: np.ndarray, ranges: Any) -> np.ndarray:
    """(n, bands) uint64 keys: one 64-bit FNV-1a-style hash of each row's values in each band."""
    keys = np.empty((sigs.shape[0], len(ranges)), dtype=np.uint64)
    prime = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        for b, (lo, hi) in enumerate(ranges):
            h = np.full(sigs.shape[0], 14695981039346656037, dtype=np.uint64)
            for k in range(lo, hi):
                h = (h ^ sigs[:, k].astype(np.uint64)) * prime
            keys[:, b] = h
    return keys
