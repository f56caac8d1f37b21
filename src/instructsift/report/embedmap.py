"""The 2-D map of the embeddings: a sample of rows, their vectors, and a projection to two dimensions.

Vectors come from the score table's embedding column when it has one (ltd, superfiltering-d), else the
embedded encoder (all-MiniLM-L6-v2) embeds the sampled rows' instructions, through the score cache (a
row embedded before, by any run with the same encoder settings, is read back, not recomputed). Only the
sample is embedded and projected, so a 1M-row table costs what `max_points` rows cost. The projection is
UMAP when `umap-learn` is installed, else PCA (scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.embedded import EMBEDDED
from .data import ReportData


@dataclass
class MapPoints:
    rows: np.ndarray  # table positions drawn
    xy: np.ndarray  # (len(rows), 2)
    projection: str  # "UMAP" or "PCA"
    source: str  # where the vectors came from, in words
    total: int  # rows that could be drawn (had a vector or a text)


def sample_rows(candidates: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most `max_points` of `candidates`, drawn uniformly at random (reproducible by `seed`), sorted."""
    if len(candidates) <= max_points:
        return np.asarray(candidates, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=max_points, replace=False)).astype(np.int64)


def map_points(data: ReportData, max_points: int = 2000, seed: int = 0) -> MapPoints | str:
    """The points to draw, or a sentence saying why there is no map."""
    if max_points <= 0:
        return "the map is turned off (--map-points 0)"
    col = data.embedding_column()
    if col is not None:
        vectors = data.table.column(col)
        has = np.flatnonzero(~np.asarray(vectors.is_null().to_numpy(zero_copy_only=False), dtype=bool))
        rows = sample_rows(has, max_points, seed)
        if len(rows) < 3:
            return f"fewer than 3 rows have a vector in `{col}`"
        x = np.asarray(vectors.take(rows).to_pylist(), dtype=np.float32)
        source = f"the score table's `{col}` column"
        total = len(has)
    elif data.examples is not None:
        rows = sample_rows(np.arange(data.n), max_points, seed)
        if len(rows) < 3:
            return "fewer than 3 rows to draw"
        x, rows = _embed(data, rows)
        source = "all-MiniLM-L6-v2 (the embedded encoder) over each instruction, for the rows drawn"
        total = data.n
    else:
        return "no embeddings: the score table has no embedding column, and no data was given to embed (--data)"
    xy, projection = project(x, seed)
    return MapPoints(rows, xy, projection, source, total)


def _embed(data: ReportData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the sampled rows (rows with an empty text have none and are left out)."""
    from ..data.io import Dataset
    from ..engine.local import score
    from ..scoring.embed import Embed

    examples = [data.examples[i] for i in rows.tolist()]
    subset = Dataset(path="report", format="alpaca", container="json", examples=examples)
    table = score(subset, [Embed(encoder=EMBEDDED)], cache_dir=data.cache_dir, progress=False)
    vectors = table.column("embedding").to_pylist()
    ok = [j for j, v in enumerate(vectors) if v is not None]
    return np.asarray([vectors[j] for j in ok], dtype=np.float32), rows[ok]


def project(x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, d) vectors to (n, 2): UMAP when installed, else PCA."""
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        umap = None
    if umap is not None and len(x) > 15:
        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
        return np.asarray(reducer.fit_transform(x), dtype=np.float64), "UMAP"
    from sklearn.decomposition import PCA

    if x.shape[1] < 2:
        return np.column_stack([x[:, 0], np.zeros(len(x))]).astype(np.float64), "PCA"
    return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(x).astype(np.float64), "PCA"
