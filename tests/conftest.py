"""Shared fixtures: the real data in ../shared/data, one model cache for the whole session, and a real
OpenAI-compatible server on loopback (`transformers serve`, transformers[serving]) with the embedded model."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CHAT = re.compile(r"POST /v1/chat/completions")


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A loopback port that nothing listens on (just now)."""
    return _free_port()


class Server:
    """`transformers serve MODEL` on 127.0.0.1; `requests()` counts the chat requests in its access log."""

    def __init__(self, model: str, log: Path) -> None:
        self.model, self.log, self.port = model, log, _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        # One torch thread: on a small shared machine the default (one per core) spin-waits at every barrier.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model, "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--device", "cpu", "--log-level", "info"]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait(self, limit_s: float = 300) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer in {limit_s:.0f} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def requests(self) -> int:
        return len(CHAT.findall(self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """`transformers serve` with the embedded SmolLM2 on 127.0.0.1, one per test module, stopped at its end."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"`transformers serve` needs transformers[serving] ({', '.join(missing)} not installed)")
    from instructsift.models import resolve

    srv = Server(resolve("embedded").path, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        srv.wait()
        yield srv
    finally:
        srv.stop()
