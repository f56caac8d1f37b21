"""The ray engine gives the local engine's bytes: a model scorer in an actor pool, and a chained selection
over light scorers run as tasks. A real local Ray (2 CPUs) is started once for the module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray engine needs Ray Data: pip install 'instructsift[ray]'")

from instructsift.data import read  # noqa: E402
from instructsift.engine import local  # noqa: E402
from instructsift.engine import ray as ray_engine  # noqa: E402
from instructsift.scoring.base import LIGHT, Resources  # noqa: E402
from instructsift.scoring.ifd import IFD  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json"


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _run(steps: list, input: Path, out: Path, engine: str, **settings):
    """A recipe run with every output (kept records, score table, dropped rows) under `out`."""
    from instructsift import recipe as recipes
    from instructsift.pipeline import run

    out.mkdir(parents=True, exist_ok=True)
    data = {
        "input": str(input),
        "output": str(out / "picked.json"),
        "scores": str(out / "scores.parquet"),
        "dropped": str(out / "dropped.jsonl"),
        "engine": engine,
        "steps": steps,
        **settings,
    }
    return run(recipes.from_dict(data), progress=False, log=lambda _m: None)


def _same_files(a: Path, b: Path) -> None:
    for name in ("picked.json", "scores.parquet", "dropped.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_model_scorer_same_bytes(ray_local, tiny_llama: Path, tmp_path: Path) -> None:
    """Two model scorers, each in an actor pool: Superfiltering's IFD and RDS+'s hidden-state vectors (the
    tiny random Llama: the engines' agreement does not depend on the weights), then RDS+'s pick for four
    target instructions and the top IFD rows of it. Each engine computes in its own cache; the kept records,
    the score table (the vectors too) and the dropped file are the same bytes."""
    targets = tmp_path / "targets.json"
    asked = ["Write a haiku about the sea.", "Explain photosynthesis.", "Sort 3, 1, 2.", "Name a prime number."]
    targets.write_text(json.dumps([{"instruction": x} for x in asked]))
    tiny = str(tiny_llama)
    steps = [
        {"score": "ifd", "with": {"method": "superfiltering", "model": tiny}},
        {"method": "rds", "with": {"top": 16, "target": str(targets), "model": tiny}},
        {"select": "top", "with": {"column": "ifd_ppl", "k": 8}},
    ]
    by_local = _run(steps, SAMPLE, tmp_path / "local", "local", cache_dir=str(tmp_path / "l"))
    by_ray = _run(steps, SAMPLE, tmp_path / "ray", "ray", cache_dir=str(tmp_path / "r"))
    assert by_ray.table.column("ifd").null_count < 4 and len(by_ray.picked.rows) == 8
    assert by_ray.table.column("representation").null_count == 0
    _same_files(tmp_path / "local", tmp_path / "ray")
    # The ray run's shards are in the local engine's layout: a local run over its cache scores nothing.
    again: dict = {}
    cached = local.score(
        read(SAMPLE),
        [IFD(method="superfiltering", model=str(tiny_llama))],
        cache_dir=tmp_path / "r",
        progress=False,
        stats=again,
    )
    assert again["ifd"]["scored"] == 0
    assert cached.column("ifd").equals(by_local.table.column("ifd"))


def _with_duplicates(tmp_path: Path) -> Path:
    """The sample plus exact copies and a copy differing only in case and spacing (a text-hash duplicate)."""
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    shouted = {**records[5], "output": "  " + records[5]["output"].upper()}
    path = tmp_path / "dups.json"
    path.write_text(json.dumps(records + records[:3] + [shouted], indent=2), encoding="utf-8")
    return path


CHAINED = [
    {"score": "rules", "with": {"tokenizer": None, "chunk_size": 16}},
    {"score": "minhash", "with": {"chunk_size": 16}},
    {"select": "threshold", "with": {"where": "response_chars >= 200"}},
    {"select": "rule_filter"},
    {"select": "dedup"},
    {"select": "top", "with": {"column": "response_chars", "ratio": 0.5}},
]


def test_chained_recipe_same_bytes(ray_local, tmp_path: Path) -> None:
    """Rules + MinHash scored as Ray tasks, then threshold -> rules -> dedup -> top: the same files."""
    data = _with_duplicates(tmp_path)
    by_local = _run(CHAINED, data, tmp_path / "local", "local", cache_dir=str(tmp_path / "l"))
    by_ray = _run(CHAINED, data, tmp_path / "ray", "ray", cache_dir=str(tmp_path / "r"))
    _same_files(tmp_path / "local", tmp_path / "ray")
    assert by_ray.picked.selection.rank == by_local.picked.selection.rank
    codes = {json.loads(x)["code"] for x in (tmp_path / "ray" / "dropped.jsonl").read_text().splitlines()}
    assert "exact duplicate" in codes and any(c.startswith("not in the top") for c in codes)
    kept = len(json.loads((tmp_path / "ray" / "picked.json").read_text()))
    assert kept + len((tmp_path / "ray" / "dropped.jsonl").read_text().splitlines()) == 36
    # Without a cache, the run still works (a temporary cache, removed afterwards).
    nocache = _run(CHAINED, data, tmp_path / "nocache", "ray", use_cache=False)
    _same_files(tmp_path / "local", tmp_path / "nocache")
    assert nocache.table.equals(by_local.table)


def test_pool_fractional_cpus_one_actor_per_gpu() -> None:
    model = IFD.resources  # a model scorer's declaration: a GPU per actor where there are GPUs
    cpu = ray_engine.plan_pool({"CPU": 2.0}, model)
    assert cpu.size == 2 and 0 < cpu.num_cpus < 1 and cpu.size * cpu.num_cpus < 2 and cpu.num_gpus == 0
    assert ray_engine.plan_pool({"CPU": 2.0}, model, chunks=1).size == 1
    gpu = ray_engine.plan_pool({"CPU": 16.0, "GPU": 4.0}, model)
    assert (gpu.size, gpu.num_gpus) == (4, 1.0) and gpu.size * gpu.num_cpus < 16
    assert ray_engine.plan_pool({"CPU": 16.0, "GPU": 4.0}, model, actors=2).size == 2


def test_the_pool_is_planned_from_the_declared_resources() -> None:
    """The GPU share per actor is the scorer's declaration: half a GPU packs two actors on each GPU, two
    GPUs give one actor per pair, none keeps a GPU cluster's actors on its CPUs; a light scorer has no pool."""
    free = {"CPU": 16.0, "GPU": 4.0}
    half = ray_engine.plan_pool(free, Resources(model=True, gpus=0.5))
    assert (half.size, half.num_gpus, half.threads) == (8, 0.5, None)
    assert ray_engine.plan_pool(free, Resources(model=True, gpus=2)).size == 2
    on_cpus = ray_engine.plan_pool(free, Resources(model=True))
    assert on_cpus.num_gpus == 0 and on_cpus.threads and on_cpus.num_cpus <= ray_engine.MAX_CPU_SHARE
    assert ray_engine.plan_pool({"CPU": 2.0, "GPU": 0.5}, IFD.resources).num_gpus == 0  # no whole GPU free
    with pytest.raises(ValueError, match="plain tasks"):
        ray_engine.plan_pool(free, LIGHT)


def test_a_scorer_runs_as_it_declares(ray_local, tmp_path: Path, monkeypatch, capsys) -> None:
    """The same light scorer, declared as plain tasks of a quarter CPU, then as holding a model: Ray runs it
    as tasks of 0.25 CPU, then in a CPU actor pool; both give the local engine's score table."""
    from instructsift.scoring.rules import Rules

    data = read(SAMPLE)
    scorers = [Rules(tokenizer=None, chunk_size=32)]
    by_local = local.score(data, scorers, cache_dir=tmp_path / "l", progress=False)
    monkeypatch.setattr(Rules, "resources", Resources(cpus=0.25))
    as_tasks = ray_engine.score(data, scorers, cache_dir=tmp_path / "t", progress=True)
    assert "on tasks (0.25 CPU each)" in capsys.readouterr().err
    monkeypatch.setattr(Rules, "resources", Resources(model=True))
    in_a_pool = ray_engine.score(data, scorers, cache_dir=tmp_path / "p", progress=True)
    assert re.search(r"on \d+ actors? \([\d.]+ CPU, \d+ torch threads each\)", capsys.readouterr().err)
    assert as_tasks.equals(by_local) and in_a_pool.equals(by_local)


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


def test_a_partly_cached_run_ships_only_what_is_missing(ray_local, tmp_path: Path) -> None:
    """A cache filled for the first 20 rows: Ray scores only the other rows (chunks half cached ship their
    cached hashes as skipped), and the score table equals the local engine's."""
    from instructsift.scoring.dedup import MinHashSignature
    from instructsift.scoring.rules import Rules

    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    head = tmp_path / "head.json"
    head.write_text(json.dumps(records[:20]), encoding="utf-8")
    scorers = [Rules(tokenizer=None, chunk_size=16), MinHashSignature(chunk_size=16)]
    local.score(read(head), scorers, cache_dir=tmp_path / "c", progress=False)
    stats: dict = {}
    by_ray = ray_engine.score(read(SAMPLE), scorers, cache_dir=tmp_path / "c", progress=False, stats=stats)
    assert stats["minhash"] == {"cached": 20, "scored": len(records) - 20, "unique": len(records)}
    assert stats["rules"]["scored"] == len(records) - 20
    by_local = local.score(read(SAMPLE), scorers, cache_dir=tmp_path / "l", progress=False)
    assert by_ray.equals(by_local)
