"""Reading an embedding column of the score table as a float32 matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.errors import MissingColumnError, OptionError


def vector_column(table: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(vectors, valid)`: an (n, d) float32 matrix of the column `name` and a mask of its non-null rows.

    Takes the `fixed_size_list<float32>` columns that the embed scorer writes, and variable-length list
    columns (a score table read back from JSON Lines) whose rows all have one length. Null rows are zeros.
    """
    import pyarrow as pa

    if name not in table.column_names:
        raise MissingColumnError(
            f"the score table has no embedding column {name!r} (columns: {', '.join(table.column_names)}); "
            "run the embed scorer first"
        )
    col = table.column(name)
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        flat = arr.values.slice(arr.offset * d, n * d)
        values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, d)
        out = np.where(valid[:, None], np.nan_to_num(values), 0.0).astype(np.float32, copy=False)
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        rows = arr.to_pylist()
        lengths = {len(r) for r in rows if r is not None}
        if len(lengths) > 1:
            raise OptionError(f"column {name!r} holds vectors of different lengths {sorted(lengths)}")
        d = lengths.pop() if lengths else 0
        out = np.zeros((n, d), dtype=np.float32)
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = r
    else:
        raise OptionError(f"column {name!r} is {arr.type}, not a vector (list of floats) column")
    if out.shape[1] == 0 and n:
        raise OptionError(f"column {name!r} has no vectors")
    return out, valid


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


def check_choice(X: np.ndarray, k: int, chosen: str = "rows from {n}") -> int:
    """The number of rows of `X`, a (rows x dimensions) array to choose `k` of them from (a clear error
    if it is not one, or k is not between 1 and that; `chosen` says what is chosen from {n} rows)."""
    if X.ndim != 2:
        raise OptionError(f"vectors must be a 2-d array (rows x dimensions), got shape {X.shape}")
    n = len(X)
    if not 1 <= k <= n:
        raise OptionError(f"cannot choose {k} {chosen.format(n=n)}: k must be between 1 and the number of rows")
    return n


def kept_vectors(table: Any, selection: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(rows, vectors)` of the rows still kept, after dropping those without a vector (with the
    scorer's reason where it gave one)."""
    vectors, valid = vector_column(table, name)
    missing = np.flatnonzero(selection.keep & ~valid)
    if len(missing):
        from ..scoring.table import reason_columns

        reason_col = reason_columns(table).get(name)  # the reason column its scorer declared for it
        why = table.column(reason_col).take(missing).to_pylist() if reason_col else [None] * len(missing)
        selection.drop(missing, "not scored", [w or f"no {name}" for w in why])
    rows = selection.kept
    return rows, vectors[rows]
