"""Model fingerprints: cached scores are keyed by them, so they must follow the weights' bytes."""

from __future__ import annotations

import os
import shutil

from instructsift.models import resolve
from instructsift.models.fingerprint import file_digest


def _folder(path, weights: bytes):
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_fingerprint_follows_the_weights_not_the_path(tmp_path):
    a = _folder(tmp_path / "a", b"\x01" * 4096)
    first = resolve(str(a)).fingerprint
    copy = tmp_path / "copy" / "a"
    copy.parent.mkdir()
    shutil.copytree(a, copy)
    assert resolve(str(copy)).fingerprint == first  # the same bytes elsewhere: the same scores apply

    # retrained in place: same name, same size, even the same modification time
    st = (a / "model.safetensors").stat()
    (a / "model.safetensors").write_bytes(b"\x02" * 4096)
    os.utime(a / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert resolve(str(a)).fingerprint != first

    (copy / "config.json").write_text('{"model_type": "llama", "rope_theta": 5}')
    assert resolve(str(copy)).fingerprint != first


def test_file_digest_is_remembered_and_checked(tmp_path):
    import hashlib

    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    assert file_digest(f) == hashlib.sha256(b"abc").hexdigest() == file_digest(f)
    f.write_bytes(b"abd")
    assert file_digest(f) == hashlib.sha256(b"abd").hexdigest()
