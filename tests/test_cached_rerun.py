"""A rerun whose rows are all cached loads no model: the model-based scorers compute their cache key and
their log line from the model's resolved source and the dtype and device the loader would choose
(`scoring.base.lm_plan`), and load the weights only when a row must be scored. The key is the one a
loaded model gives (`lm_config`), so caches written before stay valid."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli

from instructsift.registry import entries
from instructsift.scoring.base import lm_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample_alpaca.json"


def _takes_model(entry) -> bool:
    return "model" in inspect.signature(entry.target).parameters


def _options(entry, tiny_llama: Path, tiny_reward: Path, tiny_t5: Path) -> dict:
    model = {"reward": tiny_reward, "unieval": tiny_t5}.get(entry.name, tiny_llama)
    return {"model": str(model), **({"dtype": "float32"} if "dtype" in entry.params.model_fields else {})}


def test_every_model_scorer_has_the_same_key_before_and_after_loading(tiny_llama, tiny_reward, tiny_t5):
    """For every registered scorer that takes a `model`: the key and log line computed without loading
    equal those after the model is loaded, and computing them loads nothing."""
    checked = []
    for entry in entries("score"):
        if not _takes_model(entry):
            continue
        before = entry.build(_options(entry, tiny_llama, tiny_reward, tiny_t5))
        key, about = before.cache_key(), before.describe()
        for attr in ("_lm", "_loaded", "_tok"):
            assert getattr(before, attr, None) is None, f"{entry.name}: cache_key() loaded {attr}"
        after = entry.build(_options(entry, tiny_llama, tiny_reward, tiny_t5))
        loader = getattr(after, "load", None) or after.tokenizer
        loader()
        assert (after.cache_key(), after.describe()) == (key, about), entry.name
        checked.append(entry.name)
    assert {
        "ifd",
        "instruction_loss",
        "judge",
        "reward",
        "unieval",
        "lengths",
        "representation",
        "trained_tokens",
    } <= set(checked)


def test_deita_key_before_and_after_loading(tiny_llama):
    from instructsift.scoring.deita import Deita

    before = Deita(complexity_model=str(tiny_llama), quality_model=str(tiny_llama), dtype="float32")
    key, about = before.cache_key(), before.describe()
    assert before._models is None
    after = Deita(complexity_model=str(tiny_llama), quality_model=str(tiny_llama), dtype="float32")
    after.load()
    assert (after.cache_key(), after.describe()) == (key, about)


@pytest.mark.parametrize("spec", ["tiny", "embedded"])
def test_lm_key_is_lm_config_of_the_loaded_model(spec, tiny_llama):
    """`lm_key` without loading == `lm_config` of the really loaded model (the key existing caches hold),
    and a `LoadedModel` passed in gives its own."""
    from instructsift.models import load_causal_lm
    from instructsift.scoring.ifd import IFD

    model = str(tiny_llama) if spec == "tiny" else spec
    lazy = IFD(model=model)
    key, about = lazy.cache_key(), lazy.describe()
    assert lazy._lm is None
    loaded = load_causal_lm(model)
    from instructsift.scoring.base import lm_key

    assert lm_key(lazy) == lm_config(loaded)
    given = IFD(model=loaded)
    assert lm_key(given) == lm_config(loaded)
    assert (given.cache_key(), given.describe()) == (key, about)
    lazy.load()
    assert (lazy.cache_key(), lazy.describe()) == (key, about)


def test_a_fully_cached_rerun_scores_nothing_and_imports_no_transformers(tiny_llama, tmp_path):
    """The CLI rerun of a finished command: "0 scored", the same bytes, and (run in one process) no
    transformers import, so no weights loaded."""
    cache, data = tmp_path / "cache", tmp_path / "four.json"
    data.write_text(json.dumps(json.loads(SAMPLE.read_text(encoding="utf-8"))[:4]), encoding="utf-8")
    args = ["select", data, "-m", "superfiltering", "--model", tiny_llama, "--top", "2", "--cache-dir", cache]
    first = cli(*args, "-o", tmp_path / "a.json")
    assert "0 from cache" in first.stderr + first.stdout
    again = cli(*args, "-o", tmp_path / "b.json")
    assert " 0 scored" in again.stderr + again.stdout
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    argv = [str(a) for a in args] + ["-q", "-o", str(tmp_path / "c.json")]
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['instructsift', *{argv!r}]\n"
        "try:\n    runpy.run_module('instructsift.cli', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout + out.stderr
    assert (tmp_path / "c.json").read_bytes() == (tmp_path / "a.json").read_bytes()


def test_embed_with_a_causal_lm_key_before_and_after_loading(tiny_llama):
    """`embed` with a causal LM (`lm:PATH`): key, log line and schema without loading == after loading."""
    from instructsift.scoring.embed import Embed

    before = Embed(encoder=f"lm:{tiny_llama}", dtype="float32")
    seen = (before.cache_key(), before.describe(), before.schema)
    assert before._model is None
    after = Embed(encoder=f"lm:{tiny_llama}", dtype="float32")
    after.load()
    assert (after.cache_key(), after.describe(), after.schema) == seen


def test_scar_key_before_and_after_loading(tiny_encoder, tmp_path):
    """`scar`: key and log line from the ranker's config.json without loading == after loading."""
    from instructsift.models.scar import build_ranker, save_ranker
    from instructsift.scoring.scar import Scar

    model, tok = build_ranker(tiny_encoder, linear_dim=8, pretrained=False)
    ranker = save_ranker(model, tok, tmp_path / "ranker", "tiny-bert")
    before = Scar(ranker=str(ranker), dtype="float32")
    seen = (before.cache_key(), before.describe())
    assert before._loaded is None
    after = Scar(ranker=str(ranker), dtype="float32")
    after.load()
    assert (after.cache_key(), after.describe()) == seen
