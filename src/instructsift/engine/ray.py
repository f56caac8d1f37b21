"""The Ray engine: the local engine's `score`, with the scoring spread over a Ray cluster by Ray Data.

For each scorer, the unique examples whose results are not in the score cache are cut into the same
chunks the local engine would give the scorer, and each chunk is scored on the cluster as the scorer's
declared `Resources` ask (`scoring.base.resources_of`): a scorer that holds a model (IFD, Embed, the local
judge, DEITA, ...) in an actor pool, where each actor builds its scorer once (its GPU share per actor where
the cluster has GPUs, fractional CPUs otherwise, sized from the free resources); a light one (rules,
language, MinHash, an API judge) as plain tasks of its declared CPUs. The engine decides nothing about a
scorer by its kind. Each chunk's results come back to the driver, which writes them as one Parquet shard
into the same cache layout the local engine reads (`<root>/scores/<scorer>-<key>/part-*.parquet`), so a
run resumes after a crash and shares its results with the local engine. The score table is then assembled by the local engine from the cache: one
assembly path, so the two engines give the same bytes.

A chunk is shipped whole, with the hashes already cached as the scorer's `skip` set, exactly as the local
engine calls `scorer.score(chunk, skip)`: batching inside a chunk (and so every float) is the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.example import Example, Message
from ..data.examples import key_column
from ..data.io import Dataset
from ..errors import MissingExtraError, require
from ..scoring.base import Resources, device_kind, resources_of
from ..scoring.cache import ScoreCache
from . import local
from .assemble import HashIndex

ADDRESS_ENV = "INSTRUCTSIFT_RAY_ADDRESS"
MAX_CPU_SHARE = 0.5  # of a CPU, per actor of a CPU-only pool


RayNotInstalled = MissingExtraError  # Ray Data is the optional extra `ray`


def _ray() -> Any:
    require("ray.data", "--engine ray", extra="ray")
    import ray

    return ray


def init(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to Ray unless it is already initialised: `address` (or `$INSTRUCTSIFT_RAY_ADDRESS`, e.g.
    `ray://head:10001` or `auto`), else a local Ray with `num_cpus` CPUs (default: all). Returns `ray`."""
    ray = _ray()
    if not ray.is_initialized():
        address = address or os.environ.get(ADDRESS_ENV) or None
        ray.init(
            address=address,
            num_cpus=num_cpus if address is None else None,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=True,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the engine prints its own line per scorer
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


# -- what travels to the workers ------------------------------------------------------------------------
def scorer_spec(scorer: Any) -> tuple[type | None, Any, str]:
    """A scorer as (class, constructor arguments, cache root), so that a worker builds a fresh one (its
    model, if any, loaded there, not pickled from here, under the driver's cache root). Scorers that are
    not dataclasses travel as they are."""
    from ..models import cache_root

    if dataclasses.is_dataclass(scorer) and not isinstance(scorer, type):
        config = {f.name: getattr(scorer, f.name) for f in dataclasses.fields(scorer) if f.init}
        return type(scorer), config, str(cache_root())
    return None, scorer, str(cache_root())


def build_scorer(spec: tuple[type | None, Any, str]) -> Any:
    """The scorer of a spec, in a worker whose every cache (models, fingerprints) follows the driver's root:
    set once per worker process, which serves one run's scorers."""
    from ..models import cache_root, set_cache_root

    cls, config, root = spec
    if cache_root() != Path(root):  # a worker (in the driver, the spec was made under this root)
        set_cache_root(root)
    return cls(**config) if cls is not None else config


def _plain(ex: Example) -> list[Any]:
    return [ex.id, ex.row, [m.as_dict() for m in ex.messages]]


def _example(plain: list[Any]) -> Example:
    ex_id, row, messages = plain
    return Example(ex_id, tuple(Message(**m) for m in messages), row)


def _run_chunks(scorer: Any, batch: Any, schema: Any) -> Any:
    """Score each shipped chunk: a table of content_hash plus the scorer's columns (cacheable rows only)."""
    import pyarrow as pa

    keep = getattr(scorer, "cacheable", None)
    rows: list[dict[str, Any]] = []
    for payload, skip in zip(batch.column("examples").to_pylist(), batch.column("skip").to_pylist(), strict=True):
        examples = [_example(x) for x in json.loads(payload)]
        for results in scorer.score(examples, frozenset(json.loads(skip)), None):
            rows += [{"content_hash": h, **r} for h, r in results if keep is None or keep(r)]
    return pa.Table.from_pylist(rows, schema=schema)


class ModelWorker:
    """One actor of the pool: builds its scorer (and model) once, then scores chunk after chunk.
    `worker_class` binds the configuration to a subclass, so no constructor arguments are needed."""

    spec: tuple[type | None, Any, str]
    key: str
    schema: Any
    threads: int | None = None

    def __init__(self) -> None:
        if self.threads:  # a CPU pool: torch may use the CPUs the actor stands for, not Ray's one thread
            import torch

            torch.set_num_threads(self.threads)
        self.scorer = build_scorer(self.spec)
        got = self.scorer.cache_key()
        if got != self.key:
            raise RuntimeError(
                f"{self.scorer.name}: this actor's configuration (cache key {got}) differs from the probe's "
                f"({self.key}); "
                "the cluster's nodes differ in device or dtype: set the scorer's device and dtype explicitly"
            )

    def __call__(self, batch: Any) -> Any:
        return _run_chunks(self.scorer, batch, self.schema)


def worker_class(spec: tuple[type | None, Any, str], key: str, schema: Any, threads: int | None) -> type:
    return type("ModelWorker", (ModelWorker,), {"spec": spec, "key": key, "schema": schema, "threads": threads})


_LIGHT: dict[tuple[str, str], Any] = {}  # light scorers built once per worker process


def _light_task(batch: Any, spec: tuple[type | None, Any, str], name: str, key: str, schema: Any) -> Any:
    scorer = _LIGHT.get((name, key))
    if scorer is None:
        scorer = _LIGHT[(name, key)] = build_scorer(spec)
    return _run_chunks(scorer, batch, schema)


def _probe(spec: tuple[type | None, Any, str]) -> tuple[str, Any, str]:
    """(cache key, schema, description) of a model scorer, computed where the actors run."""
    scorer = build_scorer(spec)
    return scorer.cache_key(), scorer.schema, scorer.describe()


@dataclasses.dataclass
class _Cached:
    """A model scorer whose every result the Ray run put in the cache: the local engine's assembly reads
    them through this stand-in, so the driver never loads the model."""

    name: str
    key: str
    schema: Any
    about: str  # the scorer's own `describe()`, so that the score table's metadata is the local engine's
    columns: dict[str, str | None]  # the scorer's declaration (`Scorer.columns`), likewise

    def cache_key(self) -> str:
        return self.key

    def describe(self) -> str:
        return self.about

    def score(self, examples: Sequence[Example], skip: frozenset[str], advance: Any = None) -> Iterator[Any]:
        missing = sum(1 for ex in examples if ex.content_hash not in skip)
        if missing:
            raise RuntimeError(f"{self.name}: {missing} examples are missing from the cache after the ray run")
        return iter(())


# -- resources ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Pool:
    """How many model actors, what each one asks Ray for, and (CPU pools) how many torch threads it runs."""

    size: int
    num_cpus: float
    num_gpus: float
    threads: int | None = None

    def describe(self) -> str:
        gpu = f", {self.num_gpus:g} GPU" if self.num_gpus else f", {self.threads} torch threads"
        return f"{self.size} actor{'s' if self.size > 1 else ''} ({self.num_cpus:g} CPU{gpu} each)"


def plan_pool(
    free: dict[str, float], resources: Resources, actors: int | None = None, chunks: int | None = None
) -> Pool:
    """The actor pool of a scorer that declares `resources` (a model): one actor per GPU share it declares
    (`resources.gpus`) that the free GPUs hold; without GPUs (or a scorer that declares none), one per free
    CPU; at most one per chunk. A CPU actor asks Ray for half a CPU or less, so that the tasks feeding the
    pool still get scheduled (an actor holding a whole CPU of a 2-CPU node starves them and the run hangs),
    and runs torch on its share of CPUs."""
    if not resources.model:
        raise ValueError("a scorer without a model runs as plain tasks, not in an actor pool")
    cpus, per_actor = float(free.get("CPU", 0)), resources.gpus
    gpus = int(free.get("GPU", 0) / per_actor + 1e-9) if per_actor else 0  # actors the free GPUs hold
    if gpus >= 1:
        size = max(1, min(actors or gpus, gpus, chunks or gpus))
        return Pool(size, round(max(0.1, min(1.0, cpus / (size + 1))), 2), per_actor)
    size = max(1, min(actors or int(cpus) or 1, chunks or sys.maxsize))
    share = round(max(0.1, min(MAX_CPU_SHARE, 0.75 * cpus / size)), 2)
    return Pool(size, share, 0.0, max(1, round(cpus / size)))


def chunk_size(scorer: Any, gpu: bool, n: int | None = None) -> int:
    """The chunk the local engine scores `scorer` in for `n` rows (`local.chunk_size`) on the device the
    scorer runs on where the pool has a GPU (`gpu`) or not: the scorer's declaration, nothing kept here."""
    return local.chunk_size(scorer, device_kind(scorer, gpu), n)


def cached(cache: ScoreCache, index: HashIndex) -> Any:
    """Which of the hashes of `index` the cache holds (a bool per hash; a damaged shard counts for nothing,
    as in the local engine), read a batch at a time."""
    import numpy as np

    held = np.zeros(index.n, dtype=bool)
    for batch in cache.batches():
        held[index.lookup(batch.column("content_hash"))[0]] = True
    return held


# -- the engine -----------------------------------------------------------------------------------------
def score(
    dataset: Dataset,
    scorers: Sequence[Any],
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
    flush_seconds: float = 0.0,
    stats: dict[str, Any] | None = None,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int | None = None,
    num_cpus: int | None = None,
) -> Any:
    """Score every example with every scorer on Ray and return the score table, as `engine.local.score`.

    `address`: the cluster (see `init`); `actors`: model actors per scorer [one per free GPU, else one
    per free CPU]; `batch_size`: examples per shipped chunk [the scorer's own chunk, which keeps the
    numbers identical to the local engine's]; `num_cpus`: CPUs of a Ray started here. With
    `use_cache=False` the results go to a temporary cache that is removed afterwards.
    `flush_seconds` is accepted for the local engine's signature: each chunk is one shard here.
    """
    del flush_seconds
    ray = init(address, num_cpus)
    from ..models import use_cache_root

    tmp = None if use_cache else tempfile.mkdtemp(prefix="instructsift-ray-")
    # The cache root (`cache_dir`, else the one in effect) holds the models and fingerprints, here and on
    # the workers (it travels with each scorer's spec); a run without the cache keeps its scores apart.
    with use_cache_root(cache_dir) as in_effect:
        root = Path(tmp) if tmp else in_effect
        try:
            examples, unique, _ = local.unique_examples(dataset.examples, key_column(dataset.examples, "content_hash"))
            index = HashIndex(unique)  # the unique examples' hashes, in their order
            final = [_score_one(ray, s, examples, index, root, progress, stats, actors, batch_size) for s in scorers]
            return local.score(dataset, final, cache_dir=root, use_cache=True, progress=False)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)


def _score_one(
    ray: Any,
    scorer: Any,
    examples: Sequence[Example],
    index: HashIndex,
    root: Path,
    progress: bool,
    stats: dict[str, Any] | None,
    actors: int | None,
    batch_size: int | None,
) -> Any:
    """Put every result of `scorer` for `examples` (whose hashes `index` holds, in order) in the cache; return
    what the local assembly reads it with."""
    import pyarrow as pa

    spec = scorer_spec(scorer)
    needs = resources_of(scorer)  # what the scorer declares: an actor pool (and its GPU share) or tasks
    model = needs.model
    free = ray.available_resources()
    pool = plan_pool(free, needs, actors) if model else None
    if pool is not None:  # the key (device, dtype) is the actors' own: ask where they run
        probe = ray.remote(num_cpus=pool.num_cpus, num_gpus=pool.num_gpus)(_probe)
        key, schema, about = ray.get(probe.remote(spec))
    else:
        key, schema, about = scorer.cache_key(), scorer.schema, scorer.describe()
    cache = ScoreCache(root, scorer.name, key, schema)
    done = cached(cache, index)
    size = batch_size or chunk_size(scorer, bool(pool and pool.num_gpus), len(examples))
    items = []  # one object per chunk, put in the object store as it is made: the driver holds one at a time
    missing = int((~done).sum())
    for lo in range(0, len(examples), size):
        todo = ~done[lo : lo + size]
        if todo.any():
            part = examples[lo : lo + size]
            skip = [ex.content_hash for ex, needed in zip(part, todo.tolist(), strict=True) if not needed]
            payload = {"examples": [json.dumps([_plain(ex) for ex in part])], "skip": [json.dumps(skip)]}
            items.append(ray.put(pa.table(payload)))
    if stats is not None:
        stats[scorer.name] = {"cached": len(examples) - missing, "scored": missing, "unique": len(examples)}
    if items:
        pool = plan_pool(free, needs, actors, len(items)) if model else None
        ds = ray.data.from_arrow_refs(items)
        if pool is not None:
            ds = ds.map_batches(
                worker_class(spec, key, cache.schema, pool.threads),
                batch_size=1,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool.size),
                num_cpus=pool.num_cpus,
                num_gpus=pool.num_gpus or None,
            )
        else:
            ds = ds.map_batches(
                _light_task,
                fn_kwargs={"spec": spec, "name": scorer.name, "key": key, "schema": cache.schema},
                batch_size=1,
                batch_format="pyarrow",
                num_cpus=needs.cpus,
            )
        _collect(ds, cache, scorer.name, missing, progress, about, pool, needs)
    return _Cached(scorer.name, key, schema, about, dict(scorer.columns)) if model else scorer


def _collect(
    ds: Any, cache: ScoreCache, name: str, total: int, progress: bool, about: str, pool: Pool | None, needs: Resources
) -> None:
    """Write each chunk's results as one cache shard as they arrive; a bar with rows/s, then one line."""
    from ..progress import progress_bar

    start = time.monotonic()
    scored = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{name} (ray)", total=total, rate="")
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if table.num_rows:
                cache.write_shard(table.cast(cache.schema))
            scored += table.num_rows
            elapsed = time.monotonic() - start
            bar.update(task, completed=scored, rate=f"{scored / elapsed:.1f} rows/s" if elapsed else "")
    if progress:
        elapsed = time.monotonic() - start
        where = pool.describe() if pool else f"tasks ({needs.cpus:g} CPU each)"
        print(
            f"{name}: {scored} rows in {elapsed:.1f} s ({scored / max(elapsed, 1e-9):.1f} rows/s) on {where}; {about}",
            file=sys.stderr,
        )


__all__ = ["RayNotInstalled", "init", "plan_pool", "score"]
