"""`Dedup` and `ExactDedup` against a plain reference (a dict of first rows, datasketch's own LSH index)
on real Alpaca rows repeated with edits: the same kept rows and the same reason for every dropped row."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from datasketch import MinHash, MinHashLSH

from instructsift.api import score
from instructsift.data import read
from instructsift.scoring.dedup import SCHEME, MinHashSignature
from instructsift.selection import Dedup, ExactDedup, Selection, Top
from instructsift.selection.base import drop_unscored


def _edit(rec: dict, rng: random.Random) -> dict:
    """A near copy: one word swapped, one added or one sentence cut."""
    out = rec["output"].split(" ")
    k = rng.randrange(len(out))
    kind = rng.randrange(3)
    if kind == 0:
        out[k] = "really"
    elif kind == 1:
        out.insert(k, "indeed")
    else:
        out = out[: max(1, len(out) - 4)]
    return {**rec, "output": " ".join(out)}


def _every(rec: dict, step: int, start: int, tag: str) -> dict:
    """Every `step`-th word of the answer from `start` replaced by a new word."""
    out = rec["output"].split(" ")
    for k in range(start, len(out), step):
        out[k] = f"{tag}{k}"
    return {**rec, "output": " ".join(out)}


@pytest.fixture(scope="module")
def dups(shared_data, tmp_path_factory):
    """700 real rows and 500 copies, shuffled: exact (re-cased, re-spaced; same text_hash), verbatim (same
    content_hash), near (a small edit) and near copies of near copies."""
    rng = random.Random(7)
    rows = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))
    records = [r for r in rows if len(r["output"].split()) >= 8][:700]
    for _ in range(500):
        src = rng.choice(records)
        kind = rng.randrange(3)
        if kind == 0:
            records.append({**src, "output": "  " + src["output"].upper().replace(" ", "  ") + "!"})
        elif kind == 1:
            records.append(dict(src))
        else:
            records.append(_edit(src, rng))
    rng.shuffle(records)
    # Triples A, B, C: C (a real row) is close to both A and B, closer to B, while A and B are further apart:
    # at threshold 0.5 C is dropped for A, the earlier, not for B, the more similar.
    for r in [r for r in rows[1500:] if len(r["output"].split()) >= 60][:40]:
        records += [_every(r, 10, 0, "alpha"), _every(r, 16, 5, "beta"), r]
    path = tmp_path_factory.mktemp("dedup") / "alpaca_dups.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    ds = read(path)
    table = score(ds, [MinHashSignature()], progress=False)
    # Rows the scorer left without a fingerprint (nulls), as a score table can hold them.
    n = table.num_rows
    for name, every in (("text_hash", 13), ("minhash", 17), ("content_hash", 19)):
        mask = pa.array(np.arange(n) % every == 5)
        col = pc.if_else(mask, pa.scalar(None, table.schema.field(name).type), table.column(name))
        table = table.set_column(table.schema.get_field_index(name), name, col)
    return table


def reference(
    table: pa.Table, keep: np.ndarray, threshold: float, exact: bool, near: bool
) -> tuple[dict[int, str], int]:
    """The plain algorithm: rows in order among the kept; the first of each text hash stays; a row is a near
    duplicate of the earliest kept, indexed row that datasketch's LSH proposes with Jaccard >= threshold.
    Also: how many rows had a later candidate more similar than the earliest."""
    rows = table.column("row").to_pylist()
    keep = keep.copy()
    dropped: dict[int, str] = {}
    not_nearest = 0
    if exact:
        first: dict[str, int] = {}
        for i, key in enumerate(table.column("text_hash").to_pylist()):
            if keep[i] and key is not None:
                j = first.setdefault(key, i)
                if j != i:
                    keep[i] = False
                    dropped[i] = f"exact duplicate (of row {rows[j]})"
    if near:
        sigs = table.column("minhash").to_pylist()
        lsh = MinHashLSH(threshold=threshold, num_perm=128)
        for i, sig in enumerate(sigs):
            if not keep[i] or sig is None:
                continue
            mh = MinHash(num_perm=128, hashvalues=np.array(sig, dtype=np.uint64), scheme=SCHEME)
            sims = {j: float(np.mean(np.array(sigs[j]) == np.array(sig))) for j in lsh.query(mh)}
            close = sorted(j for j, s in sims.items() if s >= threshold)
            not_nearest += bool(close) and sims[close[0]] < max(sims[j] for j in close)
            if close:
                dropped[i] = f"near duplicate (of row {rows[close[0]]}, Jaccard ~ {sims[close[0]]:.2f})"
            else:
                lsh.insert(i, mh)
    return dropped, not_nearest


@pytest.mark.parametrize(
    "threshold,exact,near,pre",
    [(0.7, True, True, False), (0.7, True, True, True), (0.5, True, True, False), (0.9, False, True, True),
     (0.7, True, False, True)],
)  # fmt: skip
def test_dedup_matches_the_reference(dups, threshold, exact, near, pre):
    sel = Selection.all(dups.num_rows)
    if pre:  # an earlier step dropped some rows, originals among them
        sel.step = "earlier"
        sel.drop(np.arange(3, dups.num_rows, 11), "dropped earlier")
    before = sel.keep.copy()
    sel.step = "dedup"
    Dedup(threshold=threshold, exact=exact, near=near).apply(dups, sel)
    want, not_nearest = reference(dups, before, threshold, exact, near)
    got = {i: r for i, r in enumerate(sel.reasons) if before[i] and r is not None}
    assert got == want
    assert sel.keep.tolist() == [bool(k) and i not in want for i, k in enumerate(before)]
    assert all(sel.steps[i] == "dedup" for i in want)
    kinds = {r.split(" (")[0] for r in want.values()}
    assert len(want) > 50 and (kinds == {"exact duplicate", "near duplicate"} or not (exact and near))
    assert not_nearest >= 5 or threshold != 0.5  # the data tests the choice among several candidates


def test_dedup_skips_rows_without_a_fingerprint(dups):
    sel = Selection.all(dups.num_rows)
    Dedup().apply(dups, sel)
    for name, kind in (("text_hash", "exact"), ("minhash", "near")):
        for i in np.flatnonzero(dups.column(name).is_null().to_numpy(zero_copy_only=False)):
            assert not (sel.reasons[i] or "").startswith(kind)


def test_exact_dedup_matches_the_reference(dups):
    sel = Selection.all(dups.num_rows)
    sel.drop(np.arange(0, dups.num_rows, 7), "dropped earlier")
    before = sel.keep.copy()
    ExactDedup().apply(dups, sel)
    rows = dups.column("row").to_pylist()
    first: dict[str | None, int] = {}  # null content hashes count as one content, as they always did
    want = {}
    for i, key in enumerate(dups.column("content_hash").to_pylist()):
        if before[i] and (j := first.setdefault(key, i)) != i:
            want[i] = f"exact duplicate (of row {rows[j]})"
    assert len(want) > 50
    assert {i: r for i, r in enumerate(sel.reasons) if before[i] and r is not None} == want


def test_dedup_on_chunked_columns_and_a_row_column_that_is_not_the_position(dups):
    """A score table read back in pieces, and one whose `row` numbers are the data set's, not positions."""
    sel = Selection.all(dups.num_rows)
    Dedup().apply(dups, sel)
    pieces = pa.Table.from_batches(dups.to_batches(max_chunksize=97))
    pieces = pieces.set_column(pieces.schema.get_field_index("row"), "row", pc.add(pieces.column("row"), 1000))
    other = Selection.all(dups.num_rows)
    Dedup().apply(pieces, other)
    assert other.keep.tolist() == sel.keep.tolist()
    shifted = [
        None if r is None else re.sub(r"of row (\d+)", lambda m: f"of row {int(m[1]) + 1000}", r) for r in sel.reasons
    ]
    assert other.reasons == shifted


def test_unscored_rows_get_their_own_reasons():
    """Only the missing rows' reasons are read; each row gets its own (or `no <score>`)."""
    table = pa.Table.from_batches(
        pa.table(
            {
                "row": list(range(6)),
                "ifd": [0.5, None, 0.7, None, None, 0.1],
                "reason": [None, "too long", None, None, "empty answer", None],  # ifd's declared reason column
            }
        ).to_batches(max_chunksize=2)
    )
    sel = Selection.all(6)
    sel.drop([4], "dropped earlier")
    drop_unscored(table, sel, ["ifd"])
    assert sel.reasons == [None, "not scored (too long)", None, "not scored (no ifd)", "dropped earlier", None]
    Top("ifd", k=1).apply(table, sel)
    assert sel.kept.tolist() == [2]
