"""Fingerprints of model files: they change when the weights do, so cached scores never outlive them.

A weight file's fingerprint is the SHA-256 of its bytes. Hashing gigabytes on every load would be slow,
so each digest is remembered under the cache, keyed by the file's path, size, inode and modification
and change times (the change time cannot be set back by hand): a file rewritten in place (a model
retrained into the same folder) is hashed again, and an unchanged one costs a `stat`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import atomic_path
from .cache import cache_root

WEIGHTS = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
NOTES = ("instructsift-source.json",)  # where a converted folder came from: a path, not the weights
SMALL = (".json", ".txt", ".model", ".jinja", ".tiktoken")  # configs and tokenizers: hashed every time


def _memo_dir() -> Path:
    return cache_root() / "fingerprints"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered by (path, size, inode, mtime, ctime)."""
    st = path.stat()
    stamp = f"{path.resolve()}:{st.st_size}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    memo = _memo_dir() / f"{hashlib.sha256(stamp.encode()).hexdigest()[:32]}.json"
    try:
        saved = json.loads(memo.read_text())
        if saved.get("stamp") == stamp:
            return saved["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    digest = h.hexdigest()
    try:
        with atomic_path(memo) as tmp:
            tmp.write_text(json.dumps({"stamp": stamp, "sha256": digest}))
    except OSError:  # a read-only cache only costs the next load another hash
        pass
    return digest


def folder_fingerprint(path: Path, recursive: bool = False) -> str:
    """A short hash over a model folder: its config and tokenizer files' bytes and its weights' digests."""
    h = hashlib.sha256()
    files = path.rglob("*") if recursive else path.glob("*")
    for f in sorted(p for p in files if p.is_file() and not p.name.startswith(".") and p.name not in NOTES):
        rel = f.relative_to(path).as_posix()
        if f.suffix in WEIGHTS:
            h.update(f"{rel}\0{file_digest(f)}\0".encode())
        elif f.suffix in SMALL and f.stat().st_size < 64_000_000:
            h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
