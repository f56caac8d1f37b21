"""One cache root: `cache_dir` given to the Python API (or --cache-dir) moves every cache under it (the
scores, the models a scorer converts, the fingerprints it remembers, a fit step's artifacts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import instructsift as isf
from instructsift.models import cache_root

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample_alpaca.json"


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_score_with_cache_dir_writes_nothing_under_the_default_root(tmp_path, monkeypatch):
    default = tmp_path / "default"
    monkeypatch.setenv("INSTRUCTSIFT_CACHE", str(default))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == default
    ds = isf.read(SAMPLE)
    ds = dataclasses.replace(ds, examples=ds.examples[:2])
    mine = tmp_path / "mine"
    # rules converts the embedded model for its tokenizer; embed fingerprints its encoder's files
    table = isf.score(ds, [isf.Rules(tokenizer="embedded"), isf.Embed()], cache_dir=mine, progress=False)
    assert table.num_rows == 2 and table.column("response_tokens").null_count == 0
    assert _files(default) == [] and _files(tmp_path / "home") == []
    written = _files(mine)
    assert any(f.startswith("fingerprints/") for f in written), written
    assert any(f.startswith("scores/rules-") for f in written) and any(f.startswith("scores/embed-") for f in written)
    assert cache_root() == default  # the root given for the call is not left behind


def test_converted_models_go_under_the_cache_root_unless_instructsift_models_is_set(tmp_path, monkeypatch):
    from instructsift.models import models_root, use_cache_root

    monkeypatch.delenv("INSTRUCTSIFT_MODELS", raising=False)
    with use_cache_root(tmp_path / "a"):
        assert models_root() == tmp_path / "a" / "models"
    monkeypatch.setenv("INSTRUCTSIFT_MODELS", str(tmp_path / "m"))
    with use_cache_root(tmp_path / "a"):
        assert models_root() == tmp_path / "m"


def test_fit_steps_take_the_cache_root_they_run_under():
    """A fit step's artifacts go under the root it runs under (`under_cache_dir` sets its `cache_dir`, a
    recipe run its `cache_dir`): no fit step defaults the root again itself."""
    import inspect

    from instructsift import registry

    registry.load_all()
    for entry in registry.entries("fit"):
        source = inspect.getsource(inspect.unwrap(entry.target))
        assert "if cache_dir else" not in source, entry.name
