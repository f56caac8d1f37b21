"""Hugging Face hub data sets as inputs: `org/name` or `hf://org/name`, through `datasets.load_dataset`.

The library's own path: its cache (a rerun reads the cached Arrow files), its authentication (`HF_TOKEN`),
its builders (the `configs:` block of the repository's README picks the files of each subset and split).
A folder in the hub's repository layout (data files and a README, not a `save_to_disk` folder) is read
through the same builders. A local path always wins over a hub id spelled the same. With `streaming`,
rows come a batch at a time from an `IterableDataset` and are never all held as Arrow.

Where a command takes several data sets (`compare --eval`, `--target`), each spells its own split, subset and
revision: `ID[@REVISION][:SUBSET]:SPLIT` (`tatsu-lab/alpaca_eval:alpaca_eval:eval`, `org/name@v1.0:test`,
`./folder:test`); hub ids hold no `@` or `:`, and a local path that exists as spelled wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arrow_rows import rows_of
from .errors import OptionError, UserError, require

PREFIX = "hf://"
# org/name as the hub spells it; `hf://datasets/org/name` is the form huggingface_hub's file system takes.
_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_FILE_EXTS = (".json", ".jsonl", ".ndjson", ".gz", ".parquet", ".csv", ".yaml", ".yml", ".txt")
OPTION_FLAGS = {"split": "--split", "subset": "--subset", "revision": "--revision", "streaming": "--streaming"}


class HubError(UserError):
    """A hub data set that could not be loaded (offline, unknown id, no such subset or split, no access)."""


@dataclass(frozen=True)
class HubSource:
    """What `load_dataset` is asked for: the id (or a hub-layout folder) and the subset, split, revision."""

    id: str
    split: str = "train"
    subset: str | None = None
    revision: str | None = None
    streaming: bool = False
    local: bool = False  # a folder in the hub's layout, not an id

    def describe(self) -> str:
        what = "hub-layout folder" if self.local else "hub data set"
        parts = [f"split {self.split}"] + [
            f"{k} {v}" for k, v in (("subset", self.subset), ("revision", self.revision)) if v
        ]
        return f"{what} {self.id} ({', '.join(parts)}{', streaming' if self.streaming else ''})"

    def load(self) -> Any:
        """The `datasets.Dataset` (or `IterableDataset` when streaming); a `HubError` naming the id and what
        failed when it cannot be loaded."""
        datasets = require("datasets", "reading a hub data set", extra="hf")
        datasets.disable_progress_bars()
        # A local folder is prepared afresh: datasets' cache of one is not invalidated when its files change.
        fresh = dict(download_mode="force_redownload", verification_mode="no_checks") if self.local else {}
        try:
            return datasets.load_dataset(
                self.id, self.subset, split=self.split, revision=self.revision, streaming=self.streaming, **fresh
            )
        except (OSError, ValueError, datasets.exceptions.DatasetsError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise HubError(f"{self.describe()}: could not be loaded: {first}") from None

    def records(self, loaded: Any = None) -> Iterator[dict[str, Any]]:
        """The rows as dicts, a batch at a time (loading again when `loaded` is not given)."""
        loaded = self.load() if loaded is None else loaded
        if self.streaming:
            for batch in loaded.iter(batch_size=1000):
                keys = list(batch)
                yield from (dict(zip(keys, values, strict=True)) for values in zip(*batch.values(), strict=True))
            return
        yield from rows_of(loaded.data.table)


@dataclass(frozen=True)
class Spelled:
    """A data input with its split, subset and revision written into it (`ID[@REVISION][:SUBSET]:SPLIT`)."""

    base: str  # the hub id (with any hf:// prefix) or folder
    split: str | None = None
    subset: str | None = None
    revision: str | None = None


def spelled(spec: str | Path) -> Spelled:
    """`spec` taken apart: `org/name@rev:subset:split` -> (org/name, split, subset, rev). A spelling that
    exists as a local path, or whose base names neither a hub id nor a hub-layout folder, is kept whole."""
    text = str(spec)
    if Path(text).exists() and not text.startswith(PREFIX):
        return Spelled(text)
    prefix = PREFIX if text.startswith(PREFIX) else ""
    base, *tail = text[len(prefix) :].split(":")
    revision = None
    head, _, last = base.rpartition("/")
    if "@" in last:
        last, revision = last.split("@", 1)
        base = f"{head}/{last}" if head else last
    if len(tail) > 2 or any(not t for t in tail) or revision == "":
        return Spelled(text)
    base = prefix + base
    if hub_id(base) is None and not is_hub_layout(Path(base)):
        return Spelled(text)
    split = tail[-1] if tail else None
    subset = tail[0] if len(tail) == 2 else None
    return Spelled(base, split, subset, revision)


def local_part(spec: str | Path) -> Path | None:
    """The local path a data input reads (a hub-layout folder without its spelled split), or None for a
    hub id; a path that names nothing comes back as it is, for the caller's "no such file" error."""
    base = spelled(spec).base
    if Path(base).exists():
        return Path(base)
    return None if hub_id(base) is not None else Path(spec)


def hub_id(spec: str | Path) -> str | None:
    """The hub id `spec` names (`hf://org/name`, or `org/name` without a data file's extension), else None.
    Says nothing of a local path: callers look for one first (a local path wins)."""
    text = str(spec)
    if text.startswith(PREFIX):
        rest = text[len(PREFIX) :].removeprefix("datasets/").strip("/")
        return rest or None
    if _ID.match(text) and not text.lower().endswith(_FILE_EXTS):
        return text
    return None


def local_or_id(local: Path, written: str) -> Path | str:
    """`local` when it exists, names a hub-layout folder (`folder:split`), or `written` names no hub id (a
    local path wins), else the hub id as written (with any `@REVISION:SUBSET:SPLIT`)."""
    if local.exists() or Path(spelled(local).base).exists():
        return local
    return written if hub_id(spelled(written).base) is not None else local


_SAVED = ("dataset_info.json", "state.json", "dataset_dict.json")  # what `save_to_disk` writes


def is_hub_layout(path: Path) -> bool:
    """A folder in the hub's repository layout: not a `save_to_disk` folder, and holding a README.md (its
    `configs:` block) or data files, which `load_dataset` reads with the hub's builders."""
    if not path.is_dir() or any((path / m).exists() for m in _SAVED):
        return False
    if (path / "README.md").is_file():
        return True
    return any(f.is_file() and f.name.lower().endswith(_FILE_EXTS[:5]) for f in path.rglob("*"))


def source_of(
    spec: str | Path,
    *,
    split: str | None = None,
    subset: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
) -> HubSource | None:
    """The hub source `spec` names, or None for a plain local file or `save_to_disk` folder. A local path
    wins over a hub id of the same spelling. Hub options given for a plain local file are an error."""
    written = spelled(spec)
    if written.base != str(spec):
        options_given = {"split": split, "subset": subset, "revision": revision}
        both = [OPTION_FLAGS[k] for k, v in options_given.items() if v is not None and getattr(written, k)]
        if both:
            raise OptionError(f"{spec} spells its own {both[0].lstrip('-')}: give it there or with {both[0]}, not both")
        spec, split = written.base, split or written.split
        subset, revision = subset or written.subset, revision or written.revision
    p = Path(spec)
    given = {"split": split, "subset": subset, "revision": revision, "streaming": streaming or None}
    options = dict(split=split or "train", subset=subset, revision=revision, streaming=streaming)
    if not str(spec).startswith(PREFIX) and p.exists():
        if is_hub_layout(p):
            return HubSource(str(p), **options, local=True)
        used = [OPTION_FLAGS[k] for k, v in given.items() if v is not None]
        if used:
            raise OptionError(
                f"{spec}: {', '.join(used)} apply to a hub data set or a folder in the hub's layout, not to a local file"
            )
        return None
    name = hub_id(spec)
    if name is None:
        return None
    return HubSource(name, **options)
