"""Start `transformers serve` with the embedded model on 127.0.0.1 for the judge benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_embedded(
    extra: Sequence[str] = (), threads: int | None = None, wait_s: float = 300.0
) -> Iterator[tuple[str, str]]:
    """(OpenAI base URL, model name) of a `transformers serve` process that stops when the block ends.

    `threads` sets the server's OMP_NUM_THREADS: on a small machine shared with other work, torch's
    default (one thread per core) can spin-wait at every barrier and make each request many times slower.
    """
    from instructsift.models import resolve

    model = resolve("embedded").path
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="isf-serve-")) / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model, "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--device", "cpu", *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer in {wait_s:.0f} s; see {log}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
