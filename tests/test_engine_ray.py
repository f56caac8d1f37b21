"""The ray engine gives the local engine's bytes: a model scorer in an actor pool, and a chained selection
over light scorers run as tasks. A real local Ray (2 CPUs) is started once for the module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray engine needs Ray Data: pip install 'instructsift[ray]'")

from instructsift.api import select, write_scores  # noqa: E402
from instructsift.data import read  # noqa: E402
from instructsift.engine import local  # noqa: E402
from instructsift.engine import ray as ray_engine  # noqa: E402
from instructsift.scoring.dedup import MinHashSignature  # noqa: E402
from instructsift.scoring.ifd import IFD  # noqa: E402
from instructsift.scoring.rules import Rules  # noqa: E402
from instructsift.selection import Dedup, RuleFilter, Threshold, Top  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json"


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _same_bytes(a, b, tmp_path: Path) -> None:
    write_scores(a, tmp_path / "a.parquet")
    write_scores(b, tmp_path / "b.parquet")
    assert a.schema == b.schema
    assert a.equals(b)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_model_scorer_same_bytes(ray_local, tmp_path: Path) -> None:
    """Superfiltering IFD: each engine computes in its own cache; the tables are identical."""
    data = read(SAMPLE)
    ifd = IFD(method="superfiltering")
    by_local: dict = {}
    by_ray: dict = {}
    want = local.score(data, [ifd], cache_dir=tmp_path / "l", progress=False, stats=by_local)
    got = ray_engine.score(data, [IFD(method="superfiltering")], cache_dir=tmp_path / "r", progress=False, stats=by_ray)
    assert by_local["ifd"]["scored"] == by_ray["ifd"]["scored"] == 32
    assert got.column("ifd").null_count < 4
    _same_bytes(got, want, tmp_path)
    # The ray run's shards are in the local engine's layout: a local run over its cache scores nothing.
    again: dict = {}
    cached = local.score(data, [ifd], cache_dir=tmp_path / "r", progress=False, stats=again)
    assert again["ifd"]["scored"] == 0
    assert cached.equals(want)


def _with_duplicates(tmp_path: Path) -> Path:
    """The sample plus exact copies and a copy differing only in case and spacing (a text-hash duplicate)."""
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    shouted = {**records[5], "output": "  " + records[5]["output"].upper()}
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(records + records[:3] + [shouted], indent=2), encoding="utf-8")
    return path


def test_chained_selection_same_bytes(ray_local, tmp_path: Path) -> None:
    """Rules + MinHash scored as Ray tasks, then threshold -> rules -> dedup -> top: same table, same picks."""
    data = read(_with_duplicates(tmp_path))
    selectors = [Threshold("response_chars >= 200"), RuleFilter(), Dedup(), Top("response_chars", ratio=0.5)]
    want = local.score(data, [Rules(), MinHashSignature()], cache_dir=tmp_path / "l", progress=False)
    stats: dict = {}
    got = ray_engine.score(
        data, [Rules(), MinHashSignature()], cache_dir=tmp_path / "r", progress=False, stats=stats, batch_size=16
    )
    assert stats["rules"] == {"cached": 0, "scored": 33, "unique": 33}  # 36 rows, 3 exact copies
    _same_bytes(got, want, tmp_path)
    picked_local, picked_ray = select(data, want, *selectors), select(data, got, *selectors)
    assert picked_ray.rows == picked_local.rows
    assert picked_ray.selection.reasons == picked_local.selection.reasons
    assert picked_ray.selection.rank == picked_local.selection.rank
    reasons = [r for r in picked_ray.selection.reasons if r]
    assert any(r.startswith("exact duplicate") for r in reasons) and any(
        r.startswith("not in the top") for r in reasons
    )
    # Without a cache, the run still works (a temporary cache, removed afterwards).
    nocache = ray_engine.score(data, [Rules(), MinHashSignature()], use_cache=False, progress=False)
    assert nocache.equals(want)


def test_pool_fractional_cpus_one_actor_per_gpu() -> None:
    cpu = ray_engine.plan_pool({"CPU": 2.0})
    assert cpu.size == 2 and 0 < cpu.num_cpus < 1 and cpu.size * cpu.num_cpus < 2 and cpu.num_gpus == 0
    assert ray_engine.plan_pool({"CPU": 2.0}, chunks=1).size == 1
    gpu = ray_engine.plan_pool({"CPU": 16.0, "GPU": 4.0})
    assert (gpu.size, gpu.num_gpus) == (4, 1.0) and gpu.size * gpu.num_cpus < 16
    assert ray_engine.plan_pool({"CPU": 16.0, "GPU": 4.0}, actors=2).size == 2


def test_read_shards_like_read(ray_local, tmp_path: Path) -> None:
    """JSON Lines shards (one bad line) read as one data set: rows numbered across shards in path order,
    the same examples and rejects as `read` of the concatenated file; Parquet shards write back."""
    from instructsift.data.io import write
    from instructsift.engine.ray_read import read_shards

    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    lines = [json.dumps(r) for r in records]
    lines.insert(12, '{"instruction": "broken"')  # row 12: invalid JSON
    parts = [lines[:10], lines[10:20], lines[20:]]
    for i, part in enumerate(parts):  # written out of order: the sorted path order counts
        (tmp_path / f"shard-{2 - i}.jsonl").write_text("\n".join(part) + "\n", encoding="utf-8")
    (tmp_path / "all.jsonl").write_text("\n".join(lines[20:] + lines[10:20] + lines[:10]) + "\n", encoding="utf-8")

    whole = read(tmp_path / "all.jsonl", on_error="skip")
    shards = read_shards(str(tmp_path / "shard-*.jsonl"), on_error="skip")
    assert (shards.format, shards.container, shards.n_read) == (whole.format, whole.container, whole.n_read)
    assert [(e.id, e.row, e.messages, e.record) for e in shards] == [(e.id, e.row, e.messages, e.record) for e in whole]
    assert [(r.row, r.reason) for r in shards.rejects] == [(r.row, r.reason) for r in whole.rejects]
    assert shards.rejects[0].path.endswith("shard-1.jsonl") and shards.rejects[0].line == 3
    with pytest.raises(Exception, match="shard-1.jsonl, line 3"):
        read_shards(str(tmp_path / "shard-*.jsonl"))

    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    for i in range(3):
        write(read(SAMPLE), list(range(i * 11, min(32, (i + 1) * 11))), pq_dir / f"part-{i}.parquet")
    from_pq = read_shards(pq_dir)
    assert [e.messages for e in from_pq] == [e.messages for e in read(SAMPLE)]
    write(from_pq, [3, 30], tmp_path / "picked.jsonl")
    picked = [json.loads(x) for x in (tmp_path / "picked.jsonl").read_text(encoding="utf-8").splitlines()]
    assert picked == [records[3], records[30]]
