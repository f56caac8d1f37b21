"""Shared fixtures: the real data in ../shared/data and one model cache for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the instructsift cache at a session folder: the embedded model is converted once per run,
    and no test reads scores that another run left behind."""
    path = tmp_path_factory.mktemp("instructsift-cache")
    old = os.environ.get("INSTRUCTSIFT_CACHE")
    os.environ["INSTRUCTSIFT_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("INSTRUCTSIFT_CACHE", None)
    else:
        os.environ["INSTRUCTSIFT_CACHE"] = old


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: the tests that need real data say so instead of failing."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED} (see SOURCES.md in the shared folder)")
    return SHARED
