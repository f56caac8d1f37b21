"""Embeddings and the diversity selectors: k-center, K-Means sampling, facility location, diverse-top.

Each selector is checked against a plain reference implementation written here; the embed scorer and
`ltd` run on real rows of ../shared/data.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import cli
from tolerances import UNIT_ABS

from instructsift.selection import Selection
from instructsift.selection.cluster import KMeansSample, kmeans_fit, kmeans_sample
from instructsift.selection.diverse import DiverseTop, diverse_top
from instructsift.selection.facility import facility_location, lazy_greedy, objective, similarity_graph
from instructsift.selection.kcenter import KCenter, kcenter_greedy, kmeans_seeds
from instructsift.selection.vectors import vector_column

ALPACA = "alpaca/alpaca_random_9k.json"


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def blobs(n: int, dim: int, centres: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim))
    return unit(c[rng.integers(centres, size=n)] + spread * rng.standard_normal((n, dim)))


def table_of(vectors: np.ndarray, **columns: list) -> pa.Table:
    dim = vectors.shape[1]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim)
    return pa.table({"row": pa.array(range(len(vectors)), pa.int64()), "embedding": emb, **columns})


# -- k-center ----------------------------------------------------------------------------------------
def brute_kcenter(X: np.ndarray, k: int, init: list[int]) -> tuple[list[int], float]:
    """Textbook farthest-first traversal in float64, one full distance pass per centre; also the
    smallest gap between the farthest and second-farthest row over all steps."""
    X = X.astype(np.float64)
    chosen = list(init)
    d = np.min([((X - X[c]) ** 2).sum(axis=1) for c in chosen], axis=0)
    d[chosen] = -1
    gap = np.inf
    while len(chosen) < k:
        second, first = np.partition(d, -2)[-2:]
        gap = min(gap, first - second)
        i = int(d.argmax())
        chosen.append(i)
        d = np.minimum(d, ((X - X[i]) ** 2).sum(axis=1))
        d[chosen] = -1
    return chosen, gap


# Instances without near-ties: float32 distances are good to ~1e-7, so a step whose two farthest rows
# are closer than that could go either way in any float32 implementation.
WELL_POSED = 1e-5


@pytest.mark.parametrize(
    ("n", "dim", "k", "init", "seed"),
    [(300, 8, 60, [0], 0), (500, 32, 200, [5, 17, 99], 1), (100, 2, 100, [0], 0), (2000, 16, 300, [3, 1999], 2018)],
)
def test_kcenter_is_exactly_the_greedy_answer(n, dim, k, init, seed):
    X = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    expected, gap = brute_kcenter(X, k, init)
    assert gap > WELL_POSED
    assert kcenter_greedy(X, k, init).tolist() == expected


def test_kcenter_on_clustered_unit_vectors_matches_brute_force():
    X = blobs(1000, 64, 20, 0.6, seed=6)
    expected, gap = brute_kcenter(X, 150, [0])
    assert gap > WELL_POSED
    assert kcenter_greedy(X, 150, [0]).tolist() == expected


def test_kcenter_with_duplicates_takes_every_distinct_row_first_then_index_order():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    X = np.repeat(base, 100, axis=0)  # 400 rows, 4 distinct: ties for the farthest among 100 rows
    rng.shuffle(X)
    picks = kcenter_greedy(X, 9, [0])
    distinct = [int(np.flatnonzero((base == X[i]).all(axis=1))[0]) for i in picks[:4]]
    assert sorted(distinct) == [0, 1, 2, 3]
    rest = [i for i in range(400) if i not in picks[:4]][:5]
    assert picks[4:].tolist() == rest  # all covered: the remaining rows in index order


def test_kcenter_bad_input_is_clear():
    X = np.zeros((10, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="cannot choose 11 centres from 10 rows"):
        kcenter_greedy(X, 11)
    with pytest.raises(ValueError, match="row indices"):
        kcenter_greedy(X, 3, [10])
    with pytest.raises(ValueError, match="distinct"):
        kcenter_greedy(X, 3, [1, 1])
    selection = Selection.all(10)  # more centres than rows: every row is kept (issue 20: keep what there is)
    KCenter(k=20).apply(table_of(unit(np.random.default_rng(0).standard_normal((10, 3)))), selection)
    assert selection.keep.all() and sorted(selection.rank.values()) == list(range(1, 11))
    with pytest.raises(KeyError, match="no embedding column 'emb'"):
        KCenter(column="emb", k=2).apply(table_of(unit(np.ones((10, 3)))), Selection.all(10))


def test_kcenter_selector_starts_from_kmeans_centres_and_ranks_in_greedy_order():
    X = blobs(400, 16, 8, 0.3, seed=3)
    table = table_of(X)
    sel = Selection.all(400)
    sel.keep[:50] = False  # an earlier selector dropped these
    KCenter(k=40, init="kmeans", n_clusters=4, seed=0).apply(table, sel)
    rows = np.arange(50, 400)
    seeds = kmeans_seeds(X[rows], 4, 0)
    expected = rows[kcenter_greedy(X[rows], 40, init=seeds)]
    assert sel.keep.sum() == 40
    assert sorted(sel.kept.tolist(), key=sel.rank.get) == expected.tolist()
    assert not sel.keep[:50].any()


# -- K-Means sampling --------------------------------------------------------------------------------
def test_kmeans_sample_takes_exactly_n_per_cluster():
    X = blobs(1200, 24, 12, 0.4, seed=4)
    labels = kmeans_fit(X, 12, seed=0).labels_
    assert np.bincount(labels).min() >= 10
    picked = kmeans_sample(X, 12, 10, seed=0)
    assert len(set(picked.tolist())) == len(picked) == 120
    assert np.bincount(labels[picked], minlength=12).tolist() == [10] * 12
    again = kmeans_sample(X, 12, 10, seed=0)
    assert picked.tolist() == again.tolist()
    assert picked.tolist() != kmeans_sample(X, 12, 10, seed=1).tolist()


def test_kmeans_sample_spreads_evenly_over_the_score_band():
    X = blobs(600, 8, 3, 0.3, seed=5)
    scores = np.random.default_rng(5).gamma(2.0, size=600)
    labels = kmeans_fit(X, 3, seed=0).labels_
    picked = kmeans_sample(X, 3, 5, scores=scores, band=(25, 75), seed=0)
    for c in range(3):
        members = np.flatnonzero(labels == c)
        lo, hi = np.percentile(scores[members], [25, 75])
        band = members[(scores[members] >= lo) & (scores[members] <= hi)]
        band = band[np.argsort(scores[band], kind="stable")]
        ranks = np.floor(np.linspace(0, len(band) - 1, 5) + 0.5).astype(int)  # evenly spaced, ends included
        expected = band[ranks]
        got = picked[labels[picked] == c]
        assert sorted(got.tolist()) == sorted(expected.tolist())


def test_kmeans_sample_keeps_small_clusters_whole_and_fills_a_thin_band():
    labels = np.array([0] * 3 + [1] * 20)
    X = np.zeros((23, 2), dtype=np.float32)
    scores = np.arange(23, dtype=float)
    picked = kmeans_sample(X, 2, 5, scores=scores, band=(50, 55), labels=labels)
    assert picked[:3].tolist() == [0, 1, 2]  # the 3-row cluster, whole
    # cluster 1 holds scores 3..22; its 50-55 percentile band holds only 13 (rank 10): the other four
    # are the rows nearest to it in rank, 12, 14, 11 and 15
    assert picked[3:].tolist() == [11, 12, 13, 14, 15]
    with pytest.raises(ValueError, match="finite"):
        kmeans_sample(X, 2, 5, scores=np.full(23, np.nan), labels=labels)
    with pytest.raises(ValueError, match="cannot make 30 clusters from 23 rows"):
        kmeans_sample(X, 30, 5)


def test_kmeans_sample_selector_warns_about_short_clusters():
    X = np.concatenate([blobs(60, 8, 1, 0.1, seed=6), blobs(4, 8, 1, 0.1, seed=7)])
    sel = Selection.all(64)
    with pytest.warns(UserWarning, match="kept whole"):
        KMeansSample(n_clusters=2, per_cluster=10).apply(table_of(X), sel)
    assert sel.keep.sum() == 14


# -- facility location -------------------------------------------------------------------------------
def plain_greedy(S: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        gains = [-1.0 if j in chosen else objective(S, np.array([*chosen, j])) for j in range(len(S))]
        chosen.append(int(np.argmax(gains)))
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_facility_location_is_within_1_minus_1_over_e_of_the_optimum(seed):
    X = unit(np.random.default_rng(seed).standard_normal((11, 5)))
    S = similarity_graph(X)
    for k in (1, 2, 3, 4):
        picks = facility_location(X, k)
        best = max(objective(S, np.array(c)) for c in itertools.combinations(range(11), k))
        assert objective(S, picks) >= (1 - 1 / math.e) * best
        assert picks.tolist() == plain_greedy(S, k)


def test_facility_location_sparse_graph_with_all_neighbours_equals_dense():
    X = blobs(120, 12, 6, 0.5, seed=8)
    dense = facility_location(X, 15)
    sparse = facility_location(X, 15, dense_limit=0, n_neighbors=120)
    assert sparse.tolist() == dense.tolist()
    graph = similarity_graph(X, dense_limit=0, n_neighbors=10)
    assert graph.nnz == 120 * 10
    picks = lazy_greedy(graph, 15)
    assert len(set(picks.tolist())) == 15


# -- diverse-top -------------------------------------------------------------------------------------
def plain_diverse_top(X: np.ndarray, order: np.ndarray, t: float, k: int | None) -> list[int]:
    kept: list[int] = []
    for i in order.tolist():
        if k is not None and len(kept) == k:
            break
        if all(float(X[i] @ X[j]) <= t for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize(("threshold", "k"), [(0.9, None), (0.8, 25), (0.95, 300)])
def test_diverse_top_respects_the_threshold(monkeypatch, threshold, k):
    import instructsift.selection.diverse as diverse

    monkeypatch.setattr(diverse, "CHUNK", 16)  # many chunk boundaries
    X = blobs(400, 16, 30, 0.15, seed=9)
    order = np.random.default_rng(9).permutation(400)
    kept = diverse_top(X, order, threshold, k)
    assert kept.tolist() == plain_diverse_top(X, order, threshold, k)
    sims = X[kept] @ X[kept].T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= threshold
    assert 0 < len(kept) < 400


def test_diverse_top_selector_walks_by_score_and_says_why():
    X = unit(np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1], [-1, 0]], dtype=np.float32))
    table = table_of(X, quality=pa.array([5.0, 4.0, 3.0, 2.0, 1.0]))
    sel = Selection.all(5)
    DiverseTop("quality", threshold=0.9, k=2).apply(table, sel)
    assert sel.kept.tolist() == [0, 2]
    assert sel.reasons[1].startswith("within cosine 0.9")
    assert sel.reasons[4].startswith("not reached")


def test_vector_column_reads_json_lists_and_nulls():
    table = pa.table({"embedding": pa.array([[3.0, 4.0], None, [0.0, 1.0]], pa.list_(pa.float64()))})
    X, valid = vector_column(table, "embedding")
    assert X.dtype == np.float32 and X.shape == (3, 2)
    assert valid.tolist() == [True, False, True]
    sel = Selection.all(3)
    KCenter(k=2, init="random").apply(table, sel)
    assert sel.kept.tolist() == [0, 2] and sel.reasons[1].startswith("not scored")
    why = pa.array([None, None, "too long", None, None])
    vectors = pa.array([[1.0, 0.0], [0.0, 1.0], None, None, [1.0, 1.0]])
    with_reason = pa.table({"embedding": vectors, "embedding_reason": why})  # the embed scorer's reason column
    sel = Selection.all(5)
    KCenter(k=2, init="random").apply(with_reason, sel)
    assert [sel.reasons[i] for i in (2, 3)] == ["not scored (too long)", "not scored (no embedding)"]


# -- the embed scorer --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alpaca(shared_data: Path):
    from instructsift.data import read

    return read(shared_data / ALPACA, on_error="skip")


def test_embed_gives_unit_vectors_and_caches(alpaca, tmp_path):
    from sentence_transformers import SentenceTransformer

    from instructsift.data.io import Dataset
    from instructsift.engine.local import score
    from instructsift.models import resolve_encoder
    from instructsift.scoring.embed import Embed

    ds = Dataset(alpaca.path, alpaca.format, alpaca.container, alpaca.examples[:40])
    stats: dict = {}
    table = score(ds, [Embed()], cache_dir=tmp_path, progress=False, stats=stats)
    assert stats["embed"]["scored"] == 40
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    X, valid = vector_column(table, "embedding")
    assert valid.all()
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    direct = SentenceTransformer(str(resolve_encoder("embedded")[0]), device="cpu").encode(
        [ex.instruction for ex in ds.examples], normalize_embeddings=True
    )
    np.testing.assert_allclose(X, direct, atol=UNIT_ABS)  # unit vectors, other batches: tests/tolerances.py
    assert list((tmp_path / "scores").glob("embed-*/part-*.parquet"))

    again: dict = {}
    cached = score(ds, [Embed()], cache_dir=tmp_path, progress=False, stats=again)
    assert again["embed"] == {"cached": 40, "scored": 0, "unique": 40}
    assert cached.column("embedding").equals(table.column("embedding"))
    other: dict = {}
    score(ds, [Embed(text="whole")], cache_dir=tmp_path, progress=False, stats=other)
    assert other["embed"]["scored"] == 40  # another text is another cache entry


def test_lm_encoder_is_the_mean_pooled_last_hidden_state(alpaca, tiny_llama):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructsift.scoring.embed import Embed

    examples = alpaca.examples[:12]
    scorer = Embed(encoder=f"lm:{tiny_llama}", template="alpaca", dtype="float32", batch_tokens=256)
    assert scorer.text == "prompt"
    rows = [r for chunk in scorer.score(examples) for r in chunk]
    got = np.array([r[1]["embedding"] for r in rows], dtype=np.float32)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    for ex, vec in zip(examples, got, strict=True):  # one at a time: no padding at all
        ids = tok(scorer.texts([ex])[0], return_tensors="pt", truncation=True, max_length=512).input_ids
        with torch.no_grad():
            h = model(ids, output_hidden_states=True).hidden_states[-1][0].mean(dim=0).numpy()
        np.testing.assert_allclose(vec, h / np.linalg.norm(h), atol=UNIT_ABS)


def test_embed_options_are_checked():
    from instructsift.methods import get_method
    from instructsift.scoring.embed import Embed

    with pytest.raises(ValueError, match="embed text must be one of"):
        Embed(text="title")
    with pytest.raises(ValueError, match="needs a model"):
        Embed(encoder="lm:")
    with pytest.raises(ValueError, match="only applies to text='prompt'"):
        Embed(text="whole", template="alpaca")
    steps = get_method("ltd").expand({"ratio": 0.1, "encoder": "lm", "model": "some/model"})  # the model tuned
    assert [s["with"] for s in steps if s.get("score") == "embed"] == [{"encoder": "lm:some/model"}]


# -- methods -----------------------------------------------------------------------------------------
def test_superfiltering_d_pools_by_ifd_then_picks_by_facility_location():
    from instructsift.methods import get_method
    from instructsift.selection import select

    X = blobs(300, 16, 20, 0.4, seed=10)
    ifd = np.random.default_rng(10).uniform(0.5, 1.2, 300)
    table = table_of(X, ifd_ppl=pa.array(ifd))
    sel = select(table, get_method("superfiltering-d").selectors(ratio=0.02))
    k = 6  # 2% of 300
    pool = np.flatnonzero(ifd < 1)
    pool = np.sort(pool[np.argsort(-ifd[pool], kind="stable")][: 10 * k])  # the top 10k by ifd_ppl
    expected = pool[facility_location(X[pool], k)]
    assert sorted(sel.kept.tolist(), key=sel.rank.get) == expected.tolist()


def test_ltd_through_the_cli(shared_data, tmp_path):
    from instructsift.api import read, read_scores

    rows = json.loads((shared_data / ALPACA).read_text(encoding="utf-8"))[:200]
    rows[3]["output"] = ""  # a bad row, as the full file has: skipped to the rejects file
    data = tmp_path / "sample.json"
    data.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    out, scores = tmp_path / "out.json", tmp_path / "scores.parquet"
    args = ["select", str(data), "--method", "ltd", "--ratio", "0.05", "-o", str(out), "--on-error", "skip", "-q"]
    cli(*args, "--save-scores", scores)
    kept = json.loads(out.read_text(encoding="utf-8"))
    assert len(kept) == 10  # 5% of the 199 good rows
    assert all(r in rows for r in kept)
    assert (tmp_path / "out.json.rejects.jsonl").exists()

    ds = read(data, on_error="skip")
    X, _ = vector_column(read_scores(scores, ds), "embedding")
    expected = kcenter_greedy(X, 10, init=kmeans_seeds(X, 1, 0))
    assert [r["instruction"] for r in kept] == [ds.examples[i].record["instruction"] for i in sorted(expected)]

    too_many = cli(*args[:3], "ltd", "--top", 500, "-o", tmp_path / "o2.json", "--on-error", "skip", "-q")
    # exit 0, as every method: keep what there is, and say so
    assert "warning: --top 500 is more than the 199 rows read" in too_many.output
    assert len(json.loads((tmp_path / "o2.json").read_text(encoding="utf-8"))) == 199
