"""Output safety: checked before any work, so that a run never writes over its input or the user's files.

`check_outputs` refuses, with one clear line each:
- an output that is an input (also through another name, a symlink or a hard link), even with overwrite;
- an output folder that holds an input;
- two outputs that are the same file;
- an output whose extension names no kind that output can be (e.g. `-o x.csv`), or a file where a folder
  goes and the reverse (a folder named `x.json`);
- an existing file or folder, unless `overwrite` is set; and even then a folder is replaced only when an
  earlier run wrote it (a datasets folder, or a model folder `finetune` saved), never a folder of other files.

`check_inputs` refuses an input that is missing or not what its name says (a folder named `x.json`, a
folder that is neither a datasets folder nor in the hub's layout) before anything is read; a hub id
(`org/name`, `hf://org/name`) that names no local path is left to `datasets.load_dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .data.errors import MissingFileError, OutputError
from .data.io import STDOUT

# What each kind of output may be, by extension ("folder": a path without an extension, or an existing folder).
KINDS: dict[str, tuple[str, ...]] = {
    "data": (".json", ".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".ndjson.gz", ".parquet", "folder"),
    "scores": (".parquet", ".jsonl"),
    "rejects": (".jsonl",),
    "json": (".json",),
    "model": ("folder",),
    "recipe": (".yaml", ".yml"),
    "compare": ("folder",),
    "report": (".html",),
    "card": (".md",),
}
FILE_EXTS = frozenset(e for kinds in KINDS.values() for e in kinds if e != "folder")
# Files that mark a folder as one an earlier run wrote, so that --overwrite may replace it.
DATASETS_MARKERS = ("dataset_info.json", "state.json")
MODEL_MARKERS = ("instructsift-model.json",)
COMPARE_MARKERS = ("results.json",)
FOLDER_WRITERS = {
    "model": "a model folder from `instructsift finetune`",
    "compare": "a folder from `instructsift compare`",
}


@dataclass(frozen=True)
class Output:
    """One path a command will write: what it holds (a key of KINDS) and the option that named it."""

    path: Path
    kind: str = "data"
    flag: str = "--output"

    @classmethod
    def of(cls, item: Output | str | os.PathLike, kind: str = "data") -> Output:
        return item if isinstance(item, Output) else cls(Path(item), kind)


def _ext(path: Path) -> str:
    """The extension that decides the kind: `.jsonl.gz` counts as one; none for a plain folder name."""
    name = path.name.lower()
    for ext in sorted(FILE_EXTS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def check_kind(out: Output) -> None:
    """Refuse an output whose extension is no kind it can be, or a file or folder in the wrong place.
    `-` is standard output (JSON Lines), for the data or score table a command writes with --output."""
    if str(out.path) == STDOUT:
        if out.kind not in ("data", "scores") or out.flag != "--output":
            raise OutputError(f"{out.flag} -: only --output can be standard output (-); give {out.flag} a file")
        return
    accepted = KINDS[out.kind]
    if accepted == ("folder",) or ("folder" in accepted and path_is_folder_kind(out.path)):
        if out.path.exists() and not out.path.is_dir():
            raise OutputError(f"{out.flag} {out.path}: is a file, but this output is a folder")
        return
    ext = _ext(out.path)
    if ext not in accepted:
        names = ", ".join("a folder (no extension)" if a == "folder" else a for a in accepted)
        got = repr(ext) if ext else "no extension"
        raise OutputError(f"{out.flag} {out.path}: unknown output kind {got} (accepted: {names})")
    if out.path.is_dir():
        raise OutputError(f"{out.flag} {out.path}: is a folder, but a {ext} output is a file")


def path_is_folder_kind(path: Path) -> bool:
    """Whether `path` names a folder: an existing folder not named like a file, or a name with no extension."""
    if path.is_dir():
        return _ext(path) not in FILE_EXTS
    return not path.suffix


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` are one file or folder: by (device, inode) when both exist (this sees symlinks
    and hard links), else by their resolved paths."""
    ia, ib = _identity(a), _identity(b)
    if ia is not None and ib is not None:
        return ia == ib
    return a.resolve() == b.resolve()


def _inside(inner: Path, folder: Path) -> bool:
    return folder.is_dir() and inner.resolve().is_relative_to(folder.resolve())


def _written_by_us(folder: Path, kind: str) -> bool:
    markers = {"model": MODEL_MARKERS, "compare": COMPARE_MARKERS}.get(kind, DATASETS_MARKERS)
    return any((folder / m).is_file() for m in markers)


def check_outputs(
    inputs: Iterable[str | os.PathLike],
    outputs: Sequence[Output | str | os.PathLike],
    overwrite: bool = False,
) -> None:
    """Refuse, before any work, outputs that would write over an input or the user's files (see the module)."""
    ins = [Path(p) for p in inputs if p is not None]
    outs = [Output.of(o) for o in outputs if o is not None]
    for out in outs:
        check_kind(out)
    for i, a in enumerate(outs):
        for b in outs[i + 1 :]:
            if same_file(a.path, b.path):
                raise OutputError(f"{a.flag} and {b.flag} are the same file ({a.path}): give each its own path")
    for out in outs:
        for src in ins:
            if same_file(out.path, src):
                raise OutputError(
                    f"{out.flag} {out.path}: is the input {src}; write to another path (--overwrite never replaces an input)"
                )
            if _inside(src, out.path):
                raise OutputError(f"{out.flag} {out.path}: holds the input {src}; write to another path")
        _check_existing(out, overwrite)


def _check_existing(out: Output, overwrite: bool) -> None:
    p = out.path
    if str(p) == STDOUT:
        return
    if not (p.exists() or p.is_symlink()):
        return
    if p.is_dir() and not p.is_symlink() and not _written_by_us(p, out.kind):
        what = FOLDER_WRITERS.get(out.kind, "a datasets folder")
        raise OutputError(
            f"{out.flag} {p}: the folder exists and is not {what}; "
            "it is never replaced (not even with --overwrite): pick a new path"
        )
    if not overwrite:
        raise OutputError(f"{out.flag} {p}: already exists; pass --overwrite to replace it")


def check_inputs(paths: Iterable[str | os.PathLike]) -> None:
    """Refuse inputs that are missing, or a folder where a file is named (`x.json/`), or a folder that is
    not a datasets folder, before anything is read."""
    from .data.hub import is_hub_layout, local_part

    for item in paths:
        if item is None:
            continue
        local = local_part(item)
        if local is None:  # a hub data set: load_dataset says what fails
            continue
        p = local  # a hub-layout folder with its split spelled (`folder:test`) is the folder
        if not p.exists():
            raise MissingFileError(f"{p}: no such file or folder")
        if p.is_dir():
            ext = _ext(p)
            if ext and ext in KINDS["data"]:
                raise MissingFileError(f"{p}: is a folder, but its name says a {ext} file")
            if not any((p / m).exists() for m in (*DATASETS_MARKERS, "dataset_dict.json")) and not is_hub_layout(p):
                raise MissingFileError(
                    f"{p}: a folder that is not a datasets folder (no dataset_info.json or state.json; "
                    "save one with datasets.Dataset.save_to_disk) nor in the hub's layout (README.md, data files)"
                )
