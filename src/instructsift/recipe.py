"""Recipes: a whole run (inputs, steps, outputs) as YAML, validated by the registry's models.

    input: data.json
    output: picked.json
    dropped: dropped.jsonl            # every dropped record with its reason (step, code, detail)
    steps:
      - score: ifd                    # a scorer: adds columns
        as: sf                        # a namespace: its columns are sf.ifd, sf.ifd_ppl, ...
        with: {method: superfiltering}
      - select: threshold             # a selector: narrows the rows still kept
        with: {where: sf.ifd_ppl < 1}
      - method: lima                  # a method: expands into its paper's steps
        with: {rules: [first_person, refusal]}
      - select: kcenter
        with: {ratio: 0.05, of: all}

Steps run in order. A scorer after a selector scores only the rows still kept. A selector with `as: NS`
sees NS's columns under their bare names (`ifd` for `sf.ifd`), so a method's selectors can run on its
namespaced scores. A fit step (`fit: finetune`) trains on the rows its `on:` selectors keep (without
changing the main selection) and names its product with `as:`; later steps refer to it as `"@NAME"`.
Relative paths are relative to the recipe file: the top-level ones (input, output, ...) and a step's
options whose parameter field declares a kind (`registry.Kind`, e.g. `registry.FilePath`): a file is a
path; data is a path, or a hub id when no local path has its spelling; a model reference is a path when it
starts with ./ or ../ or names something in the recipe's folder, else a name (embedded, a hub id) kept as
it is. Errors name the recipe's file, line and key. A selector's score column (a field declared
`registry.ColumnRef`, or what its `reads()` names) that no step before it writes is such an error, raised
when the recipe is read (`check_columns`), before any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import registry
from .data.errors import MissingFileError, with_prefix
from .errors import UsageError

STEP_KEYS = {"as", "with", "on"}
PATH_KEYS = ("input", "output", "rejects", "dropped", "scores", "from_scores", "cache_dir", "report")


class RecipeError(UsageError):
    """A recipe that cannot run as written: names the file, line and key."""


@dataclass
class Step:
    """One recipe step: `kind` (score, select, fit, method), the registered `name`, its `options`, an
    optional namespace (`as`) and, for a fit step, the selectors (`on`) that pick its training rows."""

    kind: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    on: list[Step] = field(default_factory=list)
    where: str = ""  # "recipe.yaml, line 7" for errors

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def path_options(self) -> dict[str, registry.Kind]:
        """The options of this step that are paths or may be (declared on its parameter fields)."""
        kinds = registry.option_kinds(registry.get(self.kind, self.name).params)
        return {k: kind for k, kind in kinds.items() if kind in registry.PATH_KINDS}

    def as_dict(self, folder: Path | None = None) -> dict[str, Any]:
        """The step as a recipe writes it; with `folder`, its path options relative to that folder."""
        out: dict[str, Any] = {self.kind: self.name}
        if self.namespace:
            out["as"] = self.namespace
        if self.on:
            out["on"] = [s.as_dict(folder) for s in self.on]
        paths = self.path_options() if folder else {}
        out["with"] = {
            k: (_portable(Path(v), folder) if folder and k in paths and os.path.isabs(str(v)) else v)
            for k, v in self.options.items()
        }
        return out

    def resolve_paths(self, base: Path) -> None:
        """Make the step's path options absolute, relative to `base` (the recipe's folder)."""
        Kind = registry.Kind
        for k, kind in self.path_options().items():
            v = self.options.get(k)
            if not isinstance(v, str) or not v or v.startswith("@"):
                continue
            p = Path(os.path.expanduser(v))
            if p.is_absolute() or (kind is Kind.data and isinstance(_data_input(base / p, v), str)):
                continue
            explicit = v.startswith(("./", "../", ".\\", "..\\")) or kind is not Kind.model
            if explicit or (base / p).exists():
                self.options[k] = os.path.normpath(base / p)
        for sub in self.on:
            sub.resolve_paths(base)


class Settings(BaseModel):
    """Everything in a recipe but its steps."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(
        description="a file, a datasets folder, a hub-layout folder, or a hub id (org/name, hf://org/name)"
    )
    split: str | None = Field(None, description="hub input: the split [train]")
    subset: str | None = Field(None, description="hub input: the subset (config name)")
    revision: str | None = Field(None, description="hub input: a branch, tag or commit")
    streaming: bool = Field(False, description="hub input: stream the rows instead of downloading the whole set")
    fields: dict[str, str] | None = Field(
        None, description="format field -> the data's field, e.g. {instruction: prompt}"
    )
    output: str | None = None
    to: Literal["alpaca", "sharegpt", "openai"] | None = Field(None, description="write the output in this format")
    card: bool = Field(False, description="also write a data set card (README.md) beside the output file")
    push_to_hub: str | None = Field(None, description="upload the output to this hub data set (org/name)")
    private: bool = Field(False, description="push_to_hub: a private data set")
    format: Literal["alpaca", "sharegpt", "openai"] | None = None
    on_error: Literal["fail", "skip"] = "fail"
    rejects: str | None = Field(None, description="skipped rows (on_error: skip) [OUTPUT.rejects.jsonl]")
    dropped: str | None = Field(None, description="every dropped record with its reason")
    scores: str | None = Field(None, description="also write the score table here")
    from_scores: str | None = Field(None, description="take the scores from this table instead of scoring")
    rescore_changed: bool = Field(False, description="with from_scores: score again the rows whose content changed")
    report: str | None = Field(None, description="an HTML report of the run (needs instructsift[report])")
    with_scores: bool = False
    allow_empty: bool = False
    cache_dir: str | None = None
    use_cache: bool = True
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    steps: list[Any] = Field(default_factory=list)


@dataclass
class Recipe:
    """A validated recipe: settings (paths resolved against `base`) and a flat list of steps (methods
    expanded into their steps, so that a saved recipe shows exactly what runs)."""

    settings: Settings
    steps: list[Step]
    source: str = "<recipe>"
    base: Path = field(default_factory=Path.cwd)

    def input_source(self) -> str:
        """The input as `data.read` takes it: a local path (relative to the recipe's folder), else a hub id
        as written (a local path of the same spelling wins)."""
        from .data.hub import local_or_id

        return str(local_or_id(self.path("input"), self.settings.input))

    def path(self, key: str) -> Path | None:
        value = getattr(self.settings, key)
        if value is None:
            return None
        if value == "-" and key in ("output", "scores"):  # standard output, not a file named `-`
            return Path(value)
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else Path(os.path.normpath(self.base / p))

    def to_yaml(self, target: str | os.PathLike | None = None, comment: str | None = None) -> str:
        """The recipe as YAML; paths are made relative to `target`'s folder when one is given."""
        data = self.settings.model_dump(exclude_defaults=True, exclude={"steps"})
        folder = Path(target).resolve().parent if target else None
        for key in PATH_KEYS:
            if key in data and not (key == "input" and self.input_source() == self.settings.input):
                data[key] = _portable(self.path(key), folder)
        data["steps"] = [s.as_dict(folder) for s in self.steps]
        head = "".join(f"# {line}\n" for line in (comment or "").splitlines())
        return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)

    def save(self, target: str | os.PathLike, comment: str | None = None) -> None:
        from .atomic import write_text

        write_text(target, self.to_yaml(target, comment))


def _data_input(local: Path, written: str) -> Path | str:
    from .data.hub import local_or_id

    return local_or_id(local, written)


def _local(key: str, value: Any) -> bool:
    """Whether a path option's value is a local path (not an input's hub id that names no local path)."""
    from .data.hub import local_or_id

    return key != "input" or isinstance(local_or_id(Path(value), str(value)), Path)


def _portable(path: Path, folder: Path | None) -> str:
    """`path` relative to `folder` when it lies there or one level up (so that a recipe folder can be
    moved with its data), else absolute."""
    if folder is None:
        return str(path)
    rel = os.path.relpath(path.resolve(), folder)
    return rel if not rel.startswith(os.path.join("..", "..")) else str(path.resolve())


def _lines(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every key and item in a YAML text, by its path (keys and list indices)."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                lines.setdefault((*path, k.value), k.start_mark.line + 1)
                walk(v, (*path, k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


class _Where:
    """Turns a key path into "FILE, line N, key a.b[2]"."""

    def __init__(self, source: str, lines: dict[tuple[Any, ...], int]):
        self.source, self.lines = source, lines

    def __call__(self, path: tuple[Any, ...]) -> str:
        key = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))
        p = tuple(path)
        while p and p not in self.lines:
            p = p[:-1]
        line = self.lines.get(p)
        return f"{self.source}" + (f", line {line}" if line else "") + (f", key {key!r}" if key else "")


def load(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file (`yaml.safe_load`); `overrides` replace top-level keys (the CLI's
    `--input`, `--output`, ... relative to the current folder)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{path}: no such recipe file")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines = _lines(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{at}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys (input, steps, output, ...)")
    base = p.resolve().parent
    for key, value in (overrides or {}).items():  # given on the command line: relative to the cwd
        if value is not None:
            data[key] = str(Path(value).resolve()) if key in PATH_KEYS and _local(key, value) else value
    return from_dict(data, source=str(path), base=base, lines=lines)


def from_dict(
    data: dict[str, Any],
    *,
    source: str = "<recipe>",
    base: str | os.PathLike | None = None,
    lines: dict[tuple[Any, ...], int] | None = None,
) -> Recipe:
    """Validate a recipe given as a mapping (what `yaml.safe_load` returns)."""
    where = _Where(source, lines or {})
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        msg = (
            first["msg"]
            if first["type"] != "extra_forbidden"
            else f"unknown key (known: {', '.join(Settings.model_fields)})"
        )
        raise RecipeError(f"{where(tuple(first['loc']))}: {msg}") from None
    if not settings.steps:
        raise RecipeError(f"{where(('steps',))}: a recipe needs at least one step")
    steps: list[Step] = []
    for i, raw in enumerate(settings.steps):
        steps += parse_step(raw, ("steps", i), where)
    base = Path(base) if base else Path.cwd()
    for st in steps:
        st.resolve_paths(base)
    check_columns(steps)
    return Recipe(settings, steps, source, base)


def check_columns(steps: list[Step]) -> None:
    """Before any work: each score column a selector reads (its `registry.ColumnRef` fields, or its own
    `reads()`) is written by a step before it, from the columns each scorer declares (`Scorer.columns`,
    namespaced as `NS.column`) and those a selector adds (its `writes()`). A column that none writes is a
    `RecipeError` naming the step's file and line and the columns there are. Checked while the columns are
    fully known: from a step whose columns cannot be told without running it (a scorer or selector that
    cannot be built before its fit step has run), on, the run itself finds a missing column."""
    from .scoring.table import KEY_COLUMNS

    known: list[str] | None = list(KEY_COLUMNS)
    for st in steps:
        if known is None:
            return
        if st.kind == "fit":
            for sub in st.on:
                _check_reads(sub, _built(sub), known)
        elif st.kind == "select":
            selector = _built(st)
            _check_reads(st, selector, known)
            if selector is None:
                known = None
            elif callable(getattr(selector, "columns", None)):  # a selector that adds columns
                adds = selector.writes() if hasattr(selector, "writes") else None
                known = None if adds is None else known + [f"{st.namespace}." * bool(st.namespace) + c for c in adds]
        else:  # a scorer (methods are expanded): the columns it declares
            written = _built(st)
            cols = None if written is None else list(getattr(written, "columns", None) or {})
            known = None if not cols else known + [f"{st.namespace}." * bool(st.namespace) + c for c in cols]


def _built(st: Step) -> Any:
    """The step's scorer or selector, or None when it cannot be built yet (a fit's product, a bad option:
    the run says why)."""
    try:
        return registry.get(st.kind, st.name).build(_unref(st.options))
    except Exception:
        return None


def _check_reads(st: Step, selector: Any, known: list[str]) -> None:
    """Raise when `selector` (step `st`) reads a column not in `known` (as its namespace shows them)."""
    import difflib

    if selector is None:
        return
    if hasattr(selector, "reads"):
        reads = list(selector.reads())
    else:
        kinds = registry.option_kinds(registry.get(st.kind, st.name).params)
        values = [getattr(selector, k, None) for k, kind in kinds.items() if kind is registry.Kind.column]
        reads = [v for v in values if isinstance(v, str) and not v.startswith("@")]
    prefix = f"{st.namespace}." if st.namespace else ""
    visible = [*known, *(c[len(prefix) :] for c in known if prefix and c.startswith(prefix))]
    for name in reads:
        if name not in visible:
            near = difflib.get_close_matches(name, visible, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise RecipeError(
                f"{st.where}: {st.kind} {st.label} reads the column {name!r}, which no step before it writes "
                f"(columns there: {', '.join(dict.fromkeys(visible))}){hint}"
            )


def parse_step(raw: Any, path: tuple[Any, ...], where: Any = None, *, inside_fit: bool = False) -> list[Step]:
    """One recipe step (a method expands into several), checked against the registry."""
    where = where or _Where("<recipe>", {})
    if not isinstance(raw, dict):
        raise RecipeError(f"{where(path)}: a step is a mapping like {{select: top, with: {{ratio: 0.1}}}}")
    kinds = [k for k in raw if k in registry.KINDS]
    if len(kinds) != 1:
        raise RecipeError(f"{where(path)}: a step names exactly one of {', '.join(registry.KINDS)}")
    kind = kinds[0]
    unknown = [k for k in raw if k not in STEP_KEYS and k != kind]
    if unknown:
        raise RecipeError(f"{where((*path, unknown[0]))}: unknown key (a step takes {kind}, as, with, on)")
    name, namespace, options = raw[kind], raw.get("as"), raw.get("with") or {}
    if not isinstance(name, str):
        raise RecipeError(f"{where((*path, kind))}: name a registered {registry.KIND_NAMES[kind]}")
    if not isinstance(options, dict):
        raise RecipeError(f"{where((*path, 'with'))}: `with` is a mapping of options")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.isidentifier()):
        raise RecipeError(f"{where((*path, 'as'))}: a namespace is a plain name like sf")
    if inside_fit and kind != "select":
        raise RecipeError(f"{where(path)}: a fit step's `on` holds selectors only")
    if "on" in raw and kind != "fit":
        raise RecipeError(f"{where((*path, 'on'))}: only a fit step takes `on`")
    at = where(path)
    try:
        entry = registry.get(kind, name)
        if kind == "method":
            expanded = entry.target.expand(options)
        else:
            entry.validate(_unref(options))
    except UsageError as e:
        raise with_prefix(f"{at}: ", e, RecipeError) from None
    if kind == "method":
        out = []
        for j, s in enumerate(expanded):
            for sub in parse_step(s, (*path, "with", j), _Where(f"{at} (method {name})", {})):
                sub.namespace = sub.namespace or namespace
                out.append(sub)
        return out
    on = [s for j, r in enumerate(raw.get("on") or []) for s in parse_step(r, (*path, "on", j), where, inside_fit=True)]
    if kind == "fit" and not namespace:
        raise RecipeError(f'{at}: a fit step needs `as: NAME`, the name later steps use as "@NAME"')
    return [Step(kind, entry.name, dict(options), namespace, on, at)]


def _unref(options: dict[str, Any]) -> dict[str, Any]:
    """Options with `"@NAME"` artifact references replaced by a placeholder path, for validation."""
    return {k: ("/artifact" if isinstance(v, str) and v.startswith("@") else v) for k, v in options.items()}


def from_method(
    method: str,
    options: dict[str, Any],
    *,
    score_only: bool = False,
    dedup_exact: bool = False,
    base: str | os.PathLike | None = None,
    **settings: Any,
) -> Recipe:
    """The recipe `instructsift select --method M` runs: the method's steps plus the run's settings
    (`score_only`: its scorers and fit steps alone, as `instructsift score` runs them; `dedup_exact`: the
    exact-duplicate selector first, so that repeated examples are neither scored nor kept twice). The options'
    relative paths are relative to `base` [the current folder]."""
    entry = registry.get("method", method)
    raw_steps = entry.target.expand(options, score_only=score_only)
    if dedup_exact and not score_only:
        from .selection.dedup import EXACT_DEDUP_STEP

        raw_steps = [dict(EXACT_DEDUP_STEP), *raw_steps]
    steps = [s for i, raw in enumerate(raw_steps) for s in parse_step(raw, ("steps", i))]
    for st in steps:
        st.resolve_paths(Path(base) if base else Path.cwd())
    data = {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in settings.items() if v is not None}
    try:
        parsed = Settings.model_validate({**data, "steps": [s.as_dict() for s in steps]})
    except ValidationError as e:
        first = e.errors()[0]
        raise UsageError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return Recipe(parsed, steps, f"--method {entry.name}")


__all__ = ["Recipe", "RecipeError", "Settings", "Step", "from_dict", "from_method", "load", "parse_step"]
