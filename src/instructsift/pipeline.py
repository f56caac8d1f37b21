"""The one path a run takes: read -> steps (score, select, fit) -> write. `instructsift run`, `select`
and `isf.run` all come here.

The score table holds `row`, `id`, `content_hash` and every scorer's columns (namespaced ones as
`NS.column`); its schema metadata records each score step's configuration (`scoring.table`). A scorer
after a selector scores only the rows still kept; the others get nulls in its columns (and "not scored:
dropped before this step" in its reason column). Every input row ends up kept, dropped (with its step,
code and detail) or rejected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .accounting import NOT_SCORED
from .data.errors import OptionError
from .data.examples import key_column, take
from .data.records import parse_fields
from .errors import UsageError, require
from .models.loader import ModelUnreachableError
from .recipe import Recipe, Step


@dataclass
class RunResult:
    """What a run did: the data set, the score table, the selection, and the files written."""

    recipe: Recipe
    picked: Any  # api.Picked
    artifacts: dict[str, str] = field(default_factory=dict)
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def table(self) -> Any:
        return self.picked.scores

    def summary(self) -> dict[str, Any]:
        return self.picked.summary()


def _log_default(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[dim]{message}[/]")


def run(
    recipe: Recipe | str | os.PathLike,
    *,
    progress: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
    engine_options: dict[str, Any] | None = None,
    protect: Sequence[Path] = (),
    warn: Callable[[Any], None] | None = None,
) -> RunResult:
    """Run a recipe (a `Recipe` or a YAML file): read, run its steps in order, write its outputs. `warn`
    (default: `log`) hears what the user should know even with -q, such as a top above the rows there are:
    an `OptionError` where it names options (`str()` spells them as the Python API does, the CLI as flags)."""
    from . import recipe as recipes
    from .api import Picked, read

    if not isinstance(recipe, Recipe):
        recipe = recipes.load(recipe)
    log = log or _log_default
    warn = warn or (lambda message: log(str(message)))
    s = recipe.settings
    output = recipe.path("output")
    rejects = recipe.path("rejects")
    if s.on_error == "skip" and rejects is None and str(output) == "-":
        raise UsageError("-o - writes the selection to standard output: give --rejects FILE for the skipped rows")
    if s.on_error == "skip" and rejects is None and output is not None:
        rejects = output.with_name(output.name + ".rejects.jsonl")
    outputs = {"output": output, "rejects": rejects, "dropped": recipe.path("dropped"), "scores": recipe.path("scores"),
               "report": recipe.path("report")}  # fmt: skip
    if outputs["report"] is not None:
        from .report.page import plotly_missing

        if why := plotly_missing():
            raise UsageError(f"--report {outputs['report']}: {why}")
    source = recipe.input_source()
    card = _card_path(recipe, output)
    if card is not None:
        outputs["card"] = card
    check_outputs([_local_input(source), recipe.path("from_scores")], outputs, overwrite, protect)
    if s.push_to_hub:
        from .card import check_push

        check_push(s.push_to_hub, output)
    selectors = {id(st): build_selector(st) for st in _all_steps(recipe.steps) if st.kind == "select"}
    for st in _all_steps(recipe.steps):  # the optional packages a step declares, before any work
        for module, extra in getattr(registry.get(st.kind, st.name).target, "requires", ()):
            require(module, (f"{st.where}: " if st.where else "") + f"the {st.name} step", extra=extra)

    from .accounting import check_not_empty
    from .data import write_rejects
    from .models import use_cache_root

    with use_cache_root(recipe.path("cache_dir")):
        dataset = read(
            source, format=s.format, on_error=s.on_error, keep_records=False, allow_empty=s.allow_empty,
            fields=parse_fields(s.fields), split=s.split, subset=s.subset, revision=s.revision, streaming=s.streaming,
        )  # fmt: skip
        log(f"read {dataset.origin}")
        if s.to is not None and output is not None:  # before any work: every row can be written so
            from .data import convert

            convert.check(dataset.examples, s.to, dataset.path)
        if s.on_error == "skip" and rejects is not None:  # before any work, so that an empty run still shows them
            write_rejects(dataset.rejects, rejects)
        check_not_empty(dataset, allow_empty=s.allow_empty)
        top = _final_k(recipe, selectors)
        if top is not None and top > len(dataset.examples):  # before any work
            n = len(dataset.examples)
            warn(OptionError(f"{{top}} is more than the {n} rows read: keeping what the method keeps", top=top))
        runner = StepRunner(dataset, recipe, progress=progress, log=log, engine_options=engine_options or {})
        for st in recipe.steps:
            try:
                runner.run(st, selectors)
            except ModelUnreachableError as e:  # say which option named the model
                names = [k for k, v in st.options.items() if v == e.spec]
                raise e.chosen_by(
                    f"--{names[0].replace('_', '-')}" if names else f"the {st.name} step's model"
                ) from None
    if any(st.kind == "score" for st in recipe.steps):
        check_not_empty(dataset, runner.table, allow_empty=s.allow_empty)
    picked = Picked(dataset, runner.table, runner.selection)
    kept = len(runner.selection.kept)
    if top is not None and kept < top <= len(dataset.examples):
        warn(OptionError(f"{{top}}: the method's rules left only {kept} to choose from; kept them all", top=top))
    result = RunResult(recipe, picked, runner.artifacts)
    _write(result, outputs)
    return result


KINDS = {"output": ("data", "--output"), "rejects": ("rejects", "--rejects"), "dropped": ("rejects", "--dropped"),
         "scores": ("scores", "--save-scores"), "report": ("report", "--report"), "card": ("card", "--card")}  # fmt: skip


def _local_input(source: str) -> Path | None:
    """The input's local path (a hub-layout folder without its spelled split), or None for a hub id
    (nothing local to protect)."""
    from .data.hub import local_part

    local = local_part(source)
    return local if local is not None and local.exists() else None


def _card_path(recipe: Recipe, output: Path | None) -> Path | None:
    """Where the data set card goes: README.md in a written datasets folder, or beside the output file
    with `card`; None without an output (or for standard output)."""
    from .outputs import path_is_folder_kind

    if output is None and recipe.settings.to is not None:
        raise UsageError("--to is the format of the written selection: give an output (-o)")
    if output is None or str(output) == "-":
        if recipe.settings.card:
            raise UsageError("--card needs an output file or folder (-o), not standard output")
        return None
    if path_is_folder_kind(output):
        return None  # written into the folder after it is saved (the folder is the output)
    return output.parent / "README.md" if recipe.settings.card else None


def check_outputs(
    inputs: list[Path | None], outputs: dict[str, Path | None], overwrite: bool, protect: Sequence[Path] = ()
) -> None:
    """Refuse, before any work, outputs that would destroy data or are of the wrong kind (`outputs`)."""
    from .outputs import Output, check_inputs
    from .outputs import check_outputs as check

    check_inputs([p for p in inputs if p])
    kinds = dict(KINDS)
    if outputs.get("output") is None:  # `instructsift score`: the score table is the output
        kinds["scores"] = ("scores", "--output")
    outs = [Output(Path(p), *kinds[k]) for k, p in outputs.items() if p is not None]
    check([*(Path(p) for p in inputs if p), *protect], outs, overwrite=overwrite)


def _final_k(recipe: Recipe, selectors: dict[int, Any]) -> int | None:
    """The count of rows the last sized select step keeps (a method's `top`), read from the size its selector
    declares (`amount`, see `selection.size.Sized`); None when that size is a share or tokens, or no step is
    sized."""
    sizes = [getattr(selectors[id(st)], "amount", None) for st in recipe.steps if st.kind == "select"]
    sizes = [a for a in sizes if a is not None]
    last = sizes[-1] if sizes else None
    return int(last.value) if last is not None and last.unit == "rows" and not last.is_share else None


def _all_steps(steps: Sequence[Step]) -> list[Step]:
    return [x for st in steps for x in (st, *st.on)]


def build_selector(st: Step) -> Any:
    return registry.get("select", st.name).build(st.options)


class StepRunner:
    """Runs steps over one data set, holding the score table, the selection and the artifacts."""

    def __init__(self, dataset: Any, recipe: Recipe, *, progress: bool, log: Callable, engine_options: dict):
        import pyarrow as pa

        from .selection import Selection

        self.dataset, self.recipe, self.progress, self.log = dataset, recipe, progress, log
        self.engine_options = engine_options
        n = len(dataset.examples)
        self.table = pa.table({name: key_column(dataset.examples, name) for name in ("row", "id", "content_hash")})
        self.configs: list[dict[str, Any]] = []  # each score step's configuration, for the table's metadata
        self.selection = Selection.all(n)
        self.artifacts: dict[str, str] = {}
        self.fitted: dict[str, dict[str, Any]] = {}  # fit step name -> {"rows": positions, "product": path}
        self.given = None  # the score table of `from_scores`, when the run takes its scores from one
        self.changed: list[int] = []  # positions whose content changed since `from_scores` was made
        given = recipe.path("from_scores")
        if given is not None:
            from .data.errors import InputError, Reject
            from .scoring.table import changed_message, match_scores

            if any(st.kind == "fit" for st in recipe.steps):
                raise UsageError("a run that takes its scores from a table cannot also run fit steps")
            self.given, self.changed = match_scores(given, dataset)
            if self.changed and not recipe.settings.rescore_changed:
                raise InputError(Reject(str(given), None, None, "content_hash", changed_message(dataset, self.changed)))

    # -- steps ---------------------------------------------------------------------------------------
    def run(self, st: Step, selectors: dict[int, Any]) -> None:
        if st.kind == "score":
            self.score(st)
        elif st.kind == "select":
            selector = selectors[id(st)]
            if any(isinstance(v, str) and v.startswith("@") for v in st.options.values()):  # names a fit's product
                selector = registry.get("select", st.name).build(self.options(st))
            self.select(st, selector, self.selection)
        elif st.kind == "fit":
            self.fit(st, selectors)
        else:  # methods are expanded when the recipe is read
            raise AssertionError(f"unexpanded step {st.kind} {st.name}")

    def options(self, st: Step) -> dict[str, Any]:
        """The step's options with "@NAME" replaced by the artifact a fit step made."""
        out = {}
        for k, v in st.options.items():
            if isinstance(v, str) and v.startswith("@"):
                if v[1:] not in self.artifacts:
                    raise UsageError(
                        f"{st.where}: {v!r} names no earlier fit step (known: {', '.join(self.artifacts) or 'none'})"
                    )
                v = self.artifacts[v[1:]]
            out[k] = v
        return out

    def score(self, st: Step) -> None:
        import pyarrow as pa

        scorer = registry.get("score", st.name).build(self.options(st))
        if self.given is not None:
            self.take_given(st, scorer)
            return
        self.log(f"{st.label}: {scorer.describe()}")
        kept = self.selection.kept
        everything = len(kept) == len(self.dataset.examples)
        subset = self.dataset if everything else _subset(self.dataset, kept.tolist())
        stats: dict[str, Any] = {}
        table = self.engine(subset, [scorer], stats)
        for counts in stats.values():
            self.log(f"{st.label}: {counts['scored']} scored, {counts['cached']} from cache")
        prefix = f"{st.namespace}." if st.namespace else ""
        own = [c for c in table.column_names if c not in ("row", "id", "content_hash")]
        from .scoring.base import score_reasons

        reasons = set(score_reasons(scorer.columns).values())  # filled with NOT_SCORED for rows not given
        for col in own:
            name = prefix + col
            if name in self.table.column_names:
                raise UsageError(
                    f"{st.where}: the column {name!r} is already in the score table: give one of the two "
                    "scorers a namespace (`as: NAME`)"
                )
            values = table.column(col)
            if not everything:
                at = [None] * len(self.dataset.examples)
                for j, i in enumerate(kept.tolist()):
                    at[i] = j
                values = values.take(pa.array(at, pa.int64()))
                if col in reasons:
                    values = pa.array(
                        [NOT_SCORED if at[i] is None else v for i, v in enumerate(values.to_pylist())], pa.string()
                    )
            self.table = self.table.append_column(pa.field(name, values.type), values)
        self.record_config(st, scorer)

    def record_config(self, st: Step, scorer: Any) -> None:
        """Keep the step's scorer configuration in the score table's schema metadata."""
        from .scoring.table import scorer_configs, with_configs

        self.configs.append({**scorer_configs([scorer])[0], "namespace": st.namespace})
        self.table = with_configs(self.table, self.configs)

    def take_given(self, st: Step, scorer: Any) -> None:
        """The scorer's columns from the score table the run was given (`from_scores`)."""
        prefix = f"{st.namespace}." if st.namespace else ""
        names = [prefix + n for n in scorer.schema.names]
        missing = [n for n in names if n not in self.given.column_names]
        if missing:
            raise UsageError(
                f"{self.recipe.path('from_scores')}: the score table lacks {', '.join(missing)} that {st.label} "
                f"produces: score with this method first (columns there: {', '.join(self.given.column_names)})"
            )
        self.check_given_config(st, scorer)
        given = self.given.select(names)
        if self.changed:
            given = self.rescore_changed(st, scorer, given)
        for name in names:
            if name in self.table.column_names:
                raise UsageError(f"{st.where}: the column {name!r} is already in the score table")
            self.table = self.table.append_column(given.schema.field(name), given.column(name))
        self.record_config(st, scorer)
        self.log(f"{st.label}: {len(names)} columns from {self.recipe.path('from_scores')}")

    def check_given_config(self, st: Step, scorer: Any) -> None:
        """The given table was made by this scorer's configuration (Parquet keeps it; JSON Lines does not,
        and is checked by its columns only)."""
        from .data.errors import InputError, Reject
        from .scoring.table import configs_of

        have = configs_of(self.given)
        if have is None:
            return
        mine = [c for c in have if c["name"] == scorer.name and c.get("namespace") == st.namespace]
        if not mine or all(c["cache_key"] != scorer.cache_key() for c in mine):
            made = "; ".join(f"{c['name']} ({c['describe']})" for c in mine) or "no such scorer"
            raise InputError(
                Reject(
                    str(self.recipe.path("from_scores")),
                    None,
                    None,
                    None,
                    f"made by another configuration of {st.label}: it has {made}, but this run uses "
                    f"{scorer.name} ({scorer.describe()}); score again",
                )
            )

    def rescore_changed(self, st: Step, scorer: Any, given: Any) -> Any:
        """`given` (this scorer's columns) with the changed rows scored again and put in place."""
        import pyarrow as pa

        fresh = self.engine(_subset(self.dataset, self.changed), [scorer], {})
        self.log(f"{st.label}: {len(self.changed)} changed rows scored again")
        prefix = f"{st.namespace}." if st.namespace else ""
        n = given.num_rows
        at = list(range(n))
        for k, i in enumerate(self.changed):
            at[i] = n + k
        columns = {}
        for name in given.column_names:
            new = fresh.column(name[len(prefix) :]).cast(given.schema.field(name).type)
            columns[name] = pa.concat_arrays([given.column(name).combine_chunks(), new.combine_chunks()]).take(
                pa.array(at, pa.int64())
            )
        return pa.table(columns, schema=given.schema.remove_metadata())

    def engine(self, dataset: Any, scorers: list[Any], stats: dict[str, Any]) -> Any:
        s = self.recipe.settings
        common = dict(
            cache_dir=self.recipe.path("cache_dir"), use_cache=s.use_cache, progress=self.progress, stats=stats
        )
        if s.engine == "ray":
            from .engine.ray import score

            return score(dataset, scorers, address=s.ray_address, **common, **self.engine_options)
        from .engine.local import score

        return score(dataset, scorers, **common)

    def select(self, st: Step, selector: Any, selection: Any) -> None:
        from .api import with_content_hash, with_record_fields

        view = _namespace_view(self.table, st.namespace) if st.namespace else self.table
        if hasattr(selector, "columns") and selection is self.selection:  # a selector that shows its numbers
            self.add_columns(st, selector.columns(view, selection))
            view = _namespace_view(self.table, st.namespace) if st.namespace else self.table
        fields = getattr(selector, "record_fields", ())
        if fields:
            view = with_record_fields(view, self.dataset, fields)
        if "content_hash" in getattr(selector, "dataset_columns", ()):
            view = with_content_hash(view, self.dataset)
        selection.step = st.label
        selector.apply(view, selection)
        selection.step = None

    def add_columns(self, st: Step, columns: dict[str, Any]) -> None:
        """Columns a selector derived from others (InstructMining's prediction), added to the score table."""
        prefix = f"{st.namespace}." if st.namespace else ""
        for col, values in columns.items():
            name = prefix + col
            if name in self.table.column_names:
                raise UsageError(f"{st.where}: the column {name!r} is already in the score table")
            self.table = self.table.append_column(name, values)

    def fit(self, st: Step, selectors: dict[int, Any]) -> None:
        """Train on the rows the fit step's `on` selectors keep (a copy of the selection), and remember
        what it made under its name."""
        import copy

        selection = copy.deepcopy(self.selection)
        for sub in st.on:
            self.select(sub, selectors[id(sub)], selection)
        rows = selection.kept.tolist()
        fit = registry.get("fit", st.name)
        params = fit.validate(self.options(st))
        self.log(f"{st.label}: {st.name} on {len(rows)} rows")
        product = fit.target(
            _subset(self.dataset, rows),
            params,  # under the run's cache root (`use_cache_root` in `run`, `pre_experience`)
            progress=self.progress,
            log=lambda m: self.log(f"{st.label}: {m}"),
        )
        self.artifacts[st.namespace] = str(product)
        self.fitted[st.namespace] = {"rows": rows, "product": str(product)}


def _subset(dataset: Any, positions: list[int]) -> Any:
    """The same data set with only the examples at `positions` (rows and ids unchanged)."""
    import dataclasses

    return dataclasses.replace(dataset, examples=take(dataset.examples, positions), rejects=[])


def _namespace_view(table: Any, namespace: str) -> Any:
    """The table where NS.col is also visible as `col` (replacing a bare `col`)."""
    from .scoring.table import configs_of, with_configs

    prefix = f"{namespace}."
    mine = {c[len(prefix) :]: c for c in table.column_names if c.startswith(prefix)}
    if not mine:
        raise UsageError(f"no column in the score table has the namespace {namespace!r}")
    keep = [c for c in table.column_names if c not in mine]
    view = table.select(keep)
    for bare, full in mine.items():
        view = view.append_column(bare, table.column(full))
    configs = configs_of(table)
    if configs is not None:  # NS's scorers declare the bare columns too (a reason column for each score)
        view = with_configs(
            view, [*configs, *({**c, "namespace": None} for c in configs if c.get("namespace") == namespace)]
        )
    return view


def _write(result: RunResult, outputs: dict[str, Path | None]) -> None:
    from .api import write, write_scores

    s = result.recipe.settings
    picked = result.picked
    if outputs["output"] is not None:
        write(picked, outputs["output"], with_scores=s.with_scores, to=s.to)
        result.written["output"] = outputs["output"]
    if outputs["scores"] is not None:
        write_scores(picked.scores, outputs["scores"])
        result.written["scores"] = outputs["scores"]
    if s.on_error == "skip" and outputs["rejects"] is not None:
        result.written["rejects"] = outputs["rejects"]  # written right after reading
    if outputs["dropped"] is not None:
        _write_dropped(picked, outputs["dropped"])
        result.written["dropped"] = outputs["dropped"]
    if outputs["output"] is not None and str(outputs["output"]) != "-":
        from .card import write_card
        from .outputs import path_is_folder_kind

        folder = path_is_folder_kind(outputs["output"])
        if folder or outputs.get("card") is not None:
            target = outputs["output"] / "README.md" if folder else outputs["card"]
            write_card(result, outputs["output"], target)
            result.written["card"] = target
    if s.push_to_hub:
        from .card import push

        push(result, outputs["output"], s.push_to_hub, private=s.private)
        result.written["hub"] = s.push_to_hub
    if outputs["report"] is not None:  # last: it shows what was written
        from .report import from_run, write_report

        write_report(from_run(result), outputs["report"])
        result.written["report"] = outputs["report"]


def _write_dropped(picked: Any, path: Path) -> None:
    """One JSON line per dropped row: where it is, the step, code and detail that dropped it, its record."""
    from .atomic import atomic_path

    sel, examples = picked.selection, picked.dataset.examples
    dropped = [i for i in range(len(examples)) if sel.reason(i) is not None]
    rows, lines, ids = (key_column(examples, name, dropped).to_pylist() for name in ("row", "line", "id"))
    records = picked.dataset.records(rows)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for k, (i, record) in enumerate(zip(dropped, records, strict=True)):
            rec = {"file": picked.dataset.path, "row": rows[k], "line": lines[k], "id": ids[k], **sel.reason(i)}
            f.write(json.dumps({**rec, "record": record}, ensure_ascii=False, default=str) + "\n")


__all__ = ["RunResult", "StepRunner", "run"]
