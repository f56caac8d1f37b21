"""`instructsift compare`: does a selection pay on this data? Fine-tune the same base model with the same
settings on each method's pick, on random picks of the same size and on all the data, and compare the tuned
models' answer loss on a held-out set.

Each method selects exactly `budget` examples (a count, or a ratio of the data set) through its own recipe
(`recipe.from_method` with `top`; any registered method joins by name), or, with `budget_tokens`, the
examples that fill that many trained answer tokens (a count, or a ratio of the data set's): each pick takes
its method's examples in rank order until they fill it (`selection.budget.fill_tokens`: the one that would
pass the budget is taken only when that lands nearer to it). Trained tokens are counted as the fine-tuning
trains them: the base model's tokenizer and template, answer tokens and EOS after the `max_length` cut;
prompt tokens do not count. At equal tokens a pick of many short examples takes more optimizer steps: the
table shows each pick's n, trained tokens and steps. A method whose filters leave less than the budget is an
error before any training (`allow_short` keeps its smaller pick, shown in the table). `random_seeds` random
picks come from `numpy.random.default_rng(seed).permutation(n)`, seeds `seed, seed+1, ...` (its first rows: the
budget's count, or as many as fill the token budget), the same on every run and the same as `select --method
random --seed S`. All trials go through `experiments.runner`, cached: a killed comparison resumes, and a method added
later adds one trial.

`target` (`--target FILE`, with `target_task_field`) gives examples of the tasks to select for to every
target-aware method (`rds`); the others ignore them. A trial is keyed by its pick's rows (`experiments.runner`), and
the targets decide rds's pick (their encoding is cached by content), so other targets train rds's arms again
where its pick changes, and nothing else. `LABEL=METHOD` in `methods` is another arm of METHOD, with the
options under LABEL (`rds-white=rds` with `options: {rds-white: {whiten: true}}`).

The output folder holds `results.json` (every number, setting and the machine), `results.md` (the table)
and `loss.png` (eval loss per method, the random band and the full-data line; needs matplotlib:
`pip install 'instructsift[plot]'`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .data.errors import OptionError
from .errors import MissingExtraError, UsageError
from .experiments.winrate import JudgeSpec
from .registry import StrictModel
from .selection.budget import fill_tokens, rows_needed, token_count
from .selection.sample import random_order, random_subset

ALL = "*"  # the `options` key whose options go to every method that takes them


class CompareSpec(StrictModel):
    """A whole comparison (the recipe form: a YAML mapping under `compare:`). Paths are relative to `base_dir`."""

    data: str
    split: str | None = Field(None, description="hub data: the split of `data` [train]")
    subset: str | None = Field(None, description="hub data: the subset (config) of `data`")
    revision: str | None = Field(None, description="hub data: a branch, tag or commit of `data`")
    eval: str | list[str] = Field(
        description="the held-out set, or several: a loss column per set (the first is the main one); a hub "
        "data set spells its split: ID[@REVISION][:SUBSET]:SPLIT"
    )
    methods: list[str] = Field(
        default_factory=list, description="methods by name, or LABEL=METHOD: an arm of METHOD with LABEL's options"
    )
    budget: int | float | list[int | float] | None = Field(
        None, description="examples per selection: a count, or a ratio of the data set (a list: a curve)"
    )
    budget_tokens: int | float | list[int | float] | None = Field(
        None, description="trained answer tokens per selection: a count, or a ratio of the data set's (a list: a curve)"
    )
    base: str = "embedded"
    random_seeds: int = Field(3, ge=0)
    seed: int = 0
    full: bool = False
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="method -> options ('*': all)")
    finetune: dict[str, Any] = Field(default_factory=dict, description="FinetuneConfig settings")
    eval_batch_tokens: int | None = Field(None, ge=1)
    eval_dtype: str = "auto"
    format: str | None = None
    on_error: str = "fail"
    cache_dir: str | None = None
    allow_short: bool = False
    plot: bool = True
    output: str | None = None
    report: str | None = Field(None, description="an HTML report of the comparison (needs instructsift[report])")
    judge: JudgeSpec | None = Field(None, description="a judge server: win rate of each model's answers vs random's")
    target: str | None = Field(None, description="examples of the target tasks, for the target-aware methods (rds)")
    target_task_field: str | None = Field(None, description="the target records' task field [each row a task]")

    @field_validator("budget", "budget_tokens")
    @classmethod
    def _budget(cls, v: Any, info: Any) -> Any:
        what = "examples" if info.field_name == "budget" else "tokens"
        for b in v if isinstance(v, list) else [] if v is None else [v]:
            if isinstance(b, bool) or (isinstance(b, int) and b < 1):
                raise ValueError(f"a budget in {what} is at least 1, got {b}")
            if isinstance(b, float) and not 0 < b <= 1:
                raise ValueError(f"a budget ratio is in (0, 1], got {b} (a count is a whole number: 450)")
        if isinstance(v, list):
            if not v:
                raise ValueError("a list of budgets needs at least one")
            if len(set(v)) != len(v):
                raise ValueError(f"a budget is listed twice: {v}")
            return v[0] if len(v) == 1 else v
        return v

    @field_validator("eval")
    @classmethod
    def _evals(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if not v:
                raise ValueError("give at least one held-out set")
            if len(set(v)) != len(v):
                raise ValueError(f"a held-out set is named twice: {v}")
            return v[0] if len(v) == 1 else v
        return v

    @property
    def evals(self) -> list[str]:
        return self.eval if isinstance(self.eval, list) else [self.eval]

    def budgets(self) -> list[CompareSpec]:
        """One spec per budget of a curve (itself for one budget)."""
        key = "budget" if self.budget is not None else "budget_tokens"
        values = getattr(self, key)
        if not isinstance(values, list):
            return [self]
        return [self.model_copy(update={key: b}) for b in values]

    @model_validator(mode="after")
    def _one_budget(self) -> CompareSpec:
        if (self.budget is None) == (self.budget_tokens is None):
            raise ValueError("give exactly one of budget (examples) or budget_tokens (trained answer tokens)")
        if self.target_task_field is not None and self.target is None:
            raise ValueError("target_task_field needs target")
        return self

    def finetune_config(self) -> Any:
        from .train.finetune import FinetuneConfig

        known = {f for f in FinetuneConfig.__dataclass_fields__}
        unknown = [k for k in self.finetune if k not in known]
        if unknown:
            raise UsageError(f"finetune does not take {', '.join(unknown)} (it takes: {', '.join(sorted(known))})")
        return FinetuneConfig(**self.finetune)


def parse_budget(text: str, option: str = "--budget") -> int | float | list[int | float]:
    """`450` -> 450 (examples or tokens); `0.05` -> 5% of the data set's; `0.05,0.1` -> a curve."""
    if "," in text:
        return [parse_budget(part.strip(), option) for part in text.split(",")]  # type: ignore[misc]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise OptionError(
            f"{option} {text!r}: a count (450), a ratio of the data set (0.05), or a list (0.05,0.1)"
        ) from None


def parse_sets(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set METHOD.KEY=VALUE` (one method) or `--set KEY=VALUE` (every method that takes KEY); values are
    YAML scalars (0, 0.5, true, text)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise OptionError(f"--set {item!r}: write METHOD.KEY=VALUE or KEY=VALUE")
        method, dot, name = key.rpartition(".")
        out.setdefault(method if dot else ALL, {})[name.replace("-", "_")] = yaml.safe_load(value)
    return out


def load_spec(path: str | os.PathLike) -> tuple[CompareSpec, Path]:
    """A compare recipe: `compare: {data, eval, methods, budget, ...}`; returns it and its folder."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UsageError(f"{p}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("compare"), dict):
        raise UsageError(f"{p}: a compare recipe is a mapping under `compare:` (data, eval, methods, budget, ...)")
    return spec_from(raw["compare"], str(p)), p.resolve().parent


def spec_from(data: dict[str, Any], source: str = "compare") -> CompareSpec:
    try:
        return CompareSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UsageError(f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def save_spec(spec: CompareSpec, target: str | os.PathLike, comment: str = "", base_dir: Path | None = None) -> None:
    """Write `spec` as a compare recipe; its paths (relative to `base_dir`) become relative to the recipe's folder."""
    from .atomic import write_text

    data = spec.model_dump(exclude_defaults=True)
    folder = Path(target).resolve().parent

    def portable(p: str, key: str) -> str:  # a hub id (data, eval, target) stays as written
        if key in ("data", "eval", "target") and isinstance(_data(base_dir or Path.cwd(), p), str):
            return p
        return os.path.relpath(_path(base_dir or Path.cwd(), p).resolve(), folder)

    for key in ("data", "eval", "cache_dir", "output", "report", "target"):
        if data.get(key):
            v = data[key]
            data[key] = [portable(p, key) for p in v] if isinstance(v, list) else portable(v, key)
    if data.get("judge", {}).get("prompt"):
        data["judge"]["prompt"] = os.path.relpath(
            _path(base_dir or Path.cwd(), data["judge"]["prompt"]).resolve(), folder
        )
    data["budget"], data["budget_tokens"] = spec.budget, spec.budget_tokens
    data = {k: v for k, v in data.items() if v is not None}
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    write_text(target, head + yaml.safe_dump({"compare": data}, sort_keys=False, allow_unicode=True))


# -- selection ------------------------------------------------------------------------------------------------
def budget_size(budget: int | float, n: int) -> int:
    """Rows a budget picks: a count, or a ratio of `n` (rounded as every ratio is: `selection.top.share`)."""
    if isinstance(budget, float):
        from .selection.top import share

        return max(1, share(budget, n))
    if budget > n:
        raise OptionError(f"--budget {budget} is more than the {n} examples in the data set")
    return budget


@dataclass
class Budget:
    """A comparison's budget: `rows` examples each, or `tokens` trained answer tokens each (`each[i]`: row
    i's trained answer tokens, `train.finetune.training_costs`). With tokens, `rows` is the most examples
    any pick can need (the shortest first), which is what a method is asked to rank."""

    each: list[int]
    rows: int
    tokens: int | None = None
    given: int | float | None = None

    @classmethod
    def of(cls, spec: CompareSpec, each: list[int]) -> Budget:
        if spec.budget_tokens is None:
            return cls(each, budget_size(spec.budget, len(each)), None, spec.budget)
        b = token_count(spec.budget_tokens, sum(each))
        return cls(each, rows_needed(each, b), b, spec.budget_tokens)

    def take(self, order: Sequence[int]) -> tuple[list[int], bool]:
        """A method's pick from its rank order, and whether the order ran out before the budget."""
        if self.tokens is None:
            return list(order[: self.rows]), len(order) < self.rows
        rows = fill_tokens(order, self.each, self.tokens)
        return rows, len(rows) == len(order) and sum(self.each[i] for i in rows) < self.tokens

    def random(self, seed: int) -> list[int]:
        """The random pick of `seed`: the first `rows` examples of `random_order(n, seed)`, or with a token
        budget its rows in that order until they fill it (as `select --method random` ranks them)."""
        if self.tokens is None:
            return random_subset(len(self.each), self.rows, seed)
        return fill_tokens(random_order(len(self.each), seed), self.each, self.tokens)

    def describe(self) -> str:
        n, total = len(self.each), sum(self.each)
        if self.tokens is None:
            return f"{self.rows:,} of {n:,} examples"
        return f"{self.tokens:,} of {total:,} trained answer tokens ({100 * self.tokens / max(total, 1):.1f}%)"

    def as_dict(self) -> dict[str, Any]:
        return {"given": self.given, "examples": None if self.tokens else self.rows, "tokens": self.tokens,
                "of": len(self.each), "of_tokens": sum(self.each)}  # fmt: skip


def arm(name: str) -> tuple[str, str]:
    """An entry of `methods`: (its label, the method). `LABEL=METHOD` is an arm of METHOD named LABEL (e.g.
    `rds-white=rds`, with `options: {rds-white: {whiten: true}}`); a plain name is its own label."""
    from . import registry

    label, eq, method = name.partition("=")
    label, method = label.strip(), (method if eq else label).strip()
    if eq:
        if not label.replace("-", "_").isidentifier():
            raise UsageError(f"method {name!r}: a label is a plain name like rds-white (letters, digits, - and _)")
        if (
            label in registry.names("method")
            or label in registry.aliases("method")
            or label == "full"
            or label.startswith("random-")
        ):
            raise UsageError(f"method {name!r}: the label {label!r} is a method's or an arm's name: choose another")
    registry.get("method", method)  # an unknown method fails here
    return label, method


def method_options(spec: CompareSpec, method: str, size: int) -> dict[str, Any]:
    """The arm's options: those under `*` that its method takes, its method's, the arm label's (`LABEL=METHOD`),
    the targets (`target`) when the method takes them, and `top` = the budget."""
    from . import registry

    label, method = arm(method)
    takes = registry.get("method", method).params.model_fields
    name = registry.get("method", method).name
    opts = {k: v for k, v in spec.options.get(ALL, {}).items() if k in takes}
    for key in dict.fromkeys((method, name, label)):
        opts.update(spec.options.get(key, {}))
    sized = [k for k in ("ratio", "top", "budget_tokens", "base", "train_max_length", "train_template") if k in opts]
    if sized:
        raise UsageError(f"method {label!r}: --budget sets the size, not {sized[0]}")
    if spec.target is not None and "target" in takes:
        given = [k for k in ("target", "target_task_field") if k in opts]
        if given:
            raise UsageError(f"method {label!r}: --target gives the targets to every method that takes them, "
                             f"not --set {given[0]}")  # fmt: skip
        opts["target"] = spec.target
        if spec.target_task_field is not None:
            opts["target_task_field"] = spec.target_task_field
    return {**opts, "top": size}


def takes_targets(method: str) -> bool:
    """Whether a method (or `LABEL=METHOD` arm) selects for `--target` examples."""
    from . import registry

    return "target" in registry.get("method", arm(method)[1]).params.model_fields


@dataclass
class Selected:
    method: str
    positions: list[int]  # the rows the method kept, in its rank order
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    run: Any = field(default=None, repr=False)  # the pipeline's result (its score table), for the report
    picked: list[int] = field(default_factory=list)  # the budget's pick of `positions`, in row order


def select_with(spec: CompareSpec, base_dir: Path, method: str, size: int, dataset: Any, *, progress: bool,
                log: Callable[[str], None]) -> Selected:  # fmt: skip
    """Run `method`'s recipe on the data for `size` examples; the kept positions."""
    from .pipeline import run
    from .recipe import from_method

    label, name = arm(method)
    recipe = from_method(
        name,
        method_options(spec, method, size),
        input=str(_data(base_dir, spec.data)),
        split=spec.split,
        subset=spec.subset,
        revision=spec.revision,
        format=spec.format,
        on_error=spec.on_error,
        cache_dir=str(_path(base_dir, spec.cache_dir)) if spec.cache_dir else None,
        base=base_dir,
    )
    t0 = time.monotonic()
    result = run(recipe, progress=progress, log=lambda m: log(f"{label}: {m}"))
    picked = result.picked
    if [ex.content_hash for ex in picked.dataset.examples] != [ex.content_hash for ex in dataset.examples]:
        raise AssertionError(f"{label}: the pipeline read another data set than the comparison")
    steps = [s.as_dict() for s in recipe.steps]
    return Selected(label, picked.selection.ranked(), time.monotonic() - t0, steps, run=result)


def warn_target_overlap(path: Path | str, spec: CompareSpec, sets: Sequence[Any], log: Callable[[str], None]) -> None:
    """A warning for each held-out set that shares instructions with the targets: selecting for its own
    questions is not a held-out test. The target file is read as the `targets` step reads it."""
    from .data.targets import read_targets

    targets = read_targets(path, task_field=spec.target_task_field)
    asked = {_instruction(ex) for ex in targets.examples}
    for held in sets:
        shared = sum(1 for ex in held.examples if _instruction(ex) in asked)
        if shared:
            log(f"warning: {shared} instructions of {held.path} are also targets ({path}): the targets should be "
                "examples of the tasks, not the held-out questions")  # fmt: skip


def _instruction(example: Any) -> tuple[str, ...]:
    """The user turns of an example (what a target without answers holds)."""
    return tuple(m.text.strip() for m in example.messages if m.role == "user")


def _path(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


def _data(base: Path, p: str) -> Path | str:
    """A data input: its local path (relative to `base`), else a hub id as written (a local path wins)."""
    from .data.hub import local_or_id

    return local_or_id(_path(base, p), p)


# -- the run ------------------------------------------------------------------------------------------------
def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("the plot (loss.png; or pass --no-plot)", "matplotlib", extra="plot") from None


def compare(
    spec: CompareSpec,
    output: str | os.PathLike | None = None,
    *,
    base_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison `spec` and write results.json, results.md and loss.png into `output` (or
    `spec.output`); returns the results (what results.json holds). With several budgets, `curve`."""
    if len(spec.budgets()) > 1:
        return curve(spec, output, base_dir=base_dir, overwrite=overwrite, progress=progress, log=log)
    from .api import read
    from .experiments.runner import ExperimentRunner
    from .models import use_cache_root
    from .outputs import Output, check_inputs, check_outputs
    from .train.finetune import optimizer_steps, training_costs

    log = log or (lambda _m: None)
    base, out = _folders(spec, output, base_dir)
    if not spec.methods and not spec.random_seeds and not spec.full:
        raise UsageError("nothing to compare: give --methods, --random-seeds or --full")
    labels = [arm(m)[0] for m in spec.methods]
    dupes = sorted({m for m in labels if labels.count(m) > 1})
    if dupes:
        raise UsageError(f"--methods names {', '.join(dupes)} twice")
    if spec.target is not None and not any(takes_targets(m) for m in spec.methods):
        raise UsageError(f"--target: none of the methods ({', '.join(labels) or 'none'}) selects for targets "
                         "(the target-aware methods: rds)")  # fmt: skip
    data_path, eval_paths = _data(base, spec.data), [_data(base, e) for e in spec.evals]
    target_path = _data(base, spec.target) if spec.target is not None else None
    check_inputs([data_path, *eval_paths, target_path])
    report = _path(base, spec.report) if spec.report else None
    outputs = [Output(out, "compare", "--output")] + ([Output(report, "report", "--report")] if report else [])
    check_outputs([data_path, *eval_paths, *([target_path] if target_path else [])], outputs, overwrite=overwrite)
    if report is not None:
        from .report import plotly_missing

        if why := plotly_missing():
            raise UsageError(f"--report {report}: {why}")
    if spec.plot:
        require_matplotlib()
    config = spec.finetune_config()
    for m in spec.methods:  # unknown methods and options fail now, not after an hour
        from . import registry

        registry.get("method", arm(m)[1]).target.expand(method_options(spec, m, 1))
    judge = _judge(spec, base)  # a judge server that does not answer fails now, before any fine-tuning
    t_start = time.monotonic()
    cache_dir = _path(base, spec.cache_dir) if spec.cache_dir else None
    with use_cache_root(cache_dir):
        hub = dict(split=spec.split, subset=spec.subset, revision=spec.revision)
        dataset = read(data_path, format=spec.format, on_error=spec.on_error, **hub)
        held_out, *more_held_out = [read(p, format=spec.format, on_error=spec.on_error) for p in eval_paths]
    n_data = len(dataset.examples)
    if not n_data:
        raise OptionError(f"{data_path}: no examples to select from")
    for held in (held_out, *more_held_out):
        leaked = {ex.content_hash for ex in dataset.examples} & {ex.content_hash for ex in held.examples}
        if leaked:
            log(f"warning: {len(leaked)} examples of {held.path} are also in the data set: their loss is not held out")
    if target_path is not None:
        warn_target_overlap(target_path, spec, (held_out, *more_held_out), log)

    runner = ExperimentRunner(  # resolves the base model: a bad --base fails before any scoring
        dataset, held_out, spec.base, config, eval_batch_tokens=spec.eval_batch_tokens, eval_dtype=spec.eval_dtype,
        cache_dir=cache_dir, progress=progress, log=log, more_evals=more_held_out,
    )  # fmt: skip
    with use_cache_root(cache_dir):
        costs = training_costs(dataset.examples, spec.base, config)
    tokens = [c.tokens for c in costs]
    budget = Budget.of(spec, tokens)
    log(f"budget: {budget.describe()}")
    if judge is not None:
        from .experiments.winrate import Answers

        answers = Answers(runner, spec.judge.max_new_tokens, spec.judge.batch_size, progress=progress, log=log)
        runner.on_model = answers.make  # each new tuned model answers the held-out set before it is deleted
    selections = [select_with(spec, base, m, budget.rows, dataset, progress=progress, log=log) for m in spec.methods]
    short = []
    for s in selections:
        rows, ran_out = budget.take(s.positions)
        s.picked = sorted(rows)
        if ran_out:
            short.append((s.method, len(rows)))
    if short and not spec.allow_short:
        what = ", ".join(f"{m} kept {n}" for m, n in short)
        raise UsageError(
            f"budget {budget.describe()}: {what}; its filters leave less than the budget. Relax them "
            "(e.g. --set lima.min_chars=0), lower the budget, or pass --allow-short to compare smaller picks"
        )
    subsets: dict[str, list[int]] = {s.method: s.picked for s in selections}
    kinds = dict.fromkeys(subsets, "method")
    for seed in range(spec.seed, spec.seed + spec.random_seeds):
        subsets[f"random-{seed}"] = budget.random(seed)
        kinds[f"random-{seed}"] = "random"
    if spec.full:
        subsets["full"] = list(range(n_data))
        kinds["full"] = "full"
    subsets = {name: sorted(rows) for name, rows in subsets.items()}
    few = min((optimizer_steps(sum(costs[i].sequences for i in rows), config) for rows in subsets.values()), default=3)
    if few < 3:
        log(
            f"warning: a pick of this budget at batch {config.batch_size}x{config.grad_accum} is {few} optimizer steps; "
            "the first is warmup at learning rate 0, so the picks can hardly differ: raise the budget or --epochs"
        )
    trials = runner.run(subsets)
    results = summarize(spec, budget, dataset, held_out, selections, trials, kinds, runner)
    more_eval_columns(results, more_held_out, trials, kinds)
    by_method = {s.method: s for s in selections}
    for row in results["rows"]:
        row["length"] = lengths(by_method[row["name"]], tokens) if row["name"] in by_method else None
    if judge is not None:
        from .experiments.winrate import run as judge_run

        results["judge"] = judge_run(spec, runner, answers, judge, trials, subsets, kinds, progress=progress)
        for row in results["rows"]:
            won = results["judge"]["trials"].get(row["name"])
            row["win_rate"], row["win_n"] = (won["win_rate"], won["n"]) if won else (None, None)
    results["seconds"] = time.monotonic() - t_start
    results["trained_now"] = len(runner.trained)
    write_results(results, out, plot=spec.plot)
    if report is not None:  # the loss table and plot, each method's scores and cut-offs, the picks' overlap
        from .report import from_comparison, write_report

        write_report(from_comparison(out, dataset, {s.method: s.run for s in selections}, subsets), report)
    return results


def _folders(
    spec: CompareSpec, output: str | os.PathLike | None, base_dir: str | os.PathLike | None
) -> tuple[Path, Path]:
    """The folder relative paths are read from, and the output folder (`output`, else the spec's)."""
    base = Path(base_dir) if base_dir else Path.cwd()
    out = Path(output) if output is not None else (_path(base, spec.output) if spec.output else None)
    if out is None:
        raise UsageError("compare needs an output folder (-o FOLDER)")
    return base, out


def curve(
    spec: CompareSpec,
    output: str | os.PathLike | None = None,
    *,
    base_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """A comparison at each of several budgets: each one's whole comparison in `budget-<value>/` (trials
    cached as ever, so a budget added later costs its trials alone), and at the top `results.json` (every
    arm's eval loss, n and trained tokens per budget), `results.md` (the curves as a table) and `curve.png`."""
    from .atomic import atomic_path
    from .outputs import Output, check_outputs

    log = log or (lambda _m: None)
    base, out = _folders(spec, output, base_dir)
    if spec.report:
        raise UsageError("--report shows one budget: give one budget, or open each budget-*/ folder's results")
    check_outputs([_path(base, spec.data), *(_path(base, e) for e in spec.evals)], [Output(out, "compare", "--output")],
                  overwrite=overwrite)  # fmt: skip
    if spec.plot:
        require_matplotlib()
    key = "budget" if spec.budget is not None else "budget_tokens"
    points: list[dict[str, Any]] = []
    with atomic_path(out, directory=True) as tmp:
        for one in spec.budgets():
            value = getattr(one, key)
            log(f"{key} {value}")
            r = compare(one, tmp / f"budget-{value}", base_dir=base, progress=progress, log=log)
            points.append({"given": value, "folder": f"budget-{value}", "budget": r["budget"], "rows": r["rows"]})
        results = {"spec": spec.model_dump(), "by": key, "points": points}
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        (tmp / "results.md").write_text(curve_markdown(results), encoding="utf-8")
        if spec.plot:
            plot_curve(results, tmp / "curve.png")
    return results


def curve_arms(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each arm's points along the budgets: the methods, the mean random pick and all the data."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for p in results["points"]:
        for row in p["rows"]:
            if row["kind"] == "random":
                continue
            name = "random (mean)" if row["kind"] == "random-mean" else row["name"]
            arms.setdefault(name, []).append({"given": p["given"], **row})
    return arms


def curve_markdown(results: dict[str, Any]) -> str:
    """Eval loss per arm (rows) and budget (columns), with each pick's n and trained tokens."""
    budgets = [p["given"] for p in results["points"]]
    unit = "examples" if results["by"] == "budget" else "trained answer tokens"
    lines = [
        "# instructsift compare: a curve over budgets",
        "",
        f"Budgets in {unit}: {', '.join(map(str, budgets))}; each budget's full table is in its `budget-*/` folder.",
        "Cells: eval loss (n, trained answer tokens); lower is better.",
        "",
        "| arm | " + " | ".join(str(b) for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name, pts in curve_arms(results).items():
        at = {p["given"]: p for p in pts}
        cells = [
            f"{at[b]['eval_loss']:.4f} ({at[b]['n']:,}, {at[b]['trained_tokens']:,})" if b in at else "-"
            for b in budgets
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curve(results: dict[str, Any], target: Path) -> None:
    """Eval loss against the budget's trained answer tokens, a line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in curve_arms(results).items():
        if name == "full":
            ax.axhline(pts[0]["eval_loss"], color="tab:green", linestyle="--", label="all data")
            continue
        style = {"color": "tab:gray", "linestyle": ":"} if name.startswith("random") else {"linestyle": "-"}
        ax.plot([p["trained_tokens"] for p in pts], [p["eval_loss"] for p in pts], marker="o", label=name, **style)
    ax.set_xlabel("trained answer tokens per epoch")
    ax.set_ylabel("held-out answer loss (lower is better)")
    ax.set_title(f"{results['spec']['base']}, {len(results['points'])} budgets")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)


def _judge(spec: CompareSpec, base: Path) -> Any:
    """The win rate's judge (checked against its server), or None without one."""
    if spec.judge is None:
        return None
    if spec.random_seeds < 1:
        raise UsageError("the win rate is against the first random seed's model: --random-seeds must be at least 1")
    j = spec.judge
    judge = (j.model_copy(update={"prompt": str(_path(base, j.prompt))}) if j.prompt else j).judge()
    judge.check()
    return judge


def summarize(spec: CompareSpec, budget: Budget, dataset: Any, held_out: Any, selections: list[Selected],
              trials: list[Any], kinds: dict[str, str], runner: Any) -> dict[str, Any]:  # fmt: skip
    """Everything results.json holds; `rows` is exactly the Markdown table."""
    from . import __version__

    by_name = {t.name: t for t in trials}
    sel = {s.method: s for s in selections}
    randoms = [t.eval_loss for t in trials if kinds[t.name] == "random"]
    rand = None
    if randoms:
        rand = {
            "mean": statistics.fmean(randoms),
            "sd": statistics.stdev(randoms) if len(randoms) > 1 else None,
            "min": min(randoms),
            "max": max(randoms),
            "seeds": len(randoms),
        }
    full = by_name["full"].eval_loss if "full" in by_name else None
    rows = []
    for t in trials:
        rows.append(_row(t.name, kinds[t.name], t.n, t.tokens, t.target_tokens, t.steps, t.eval_loss, rand,
                         full, sel[t.name].seconds if t.name in sel else None, t.seconds))  # fmt: skip
    if rand is not None:
        rs = [t for t in trials if kinds[t.name] == "random"]
        rows.append(
            _row(
                f"random (mean of {len(rs)})",
                "random-mean",
                round(statistics.fmean(t.n for t in rs)),
                round(statistics.fmean(t.tokens for t in rs)),
                round(statistics.fmean(t.target_tokens for t in rs)),
                round(statistics.fmean(t.steps for t in rs)),
                rand["mean"],
                rand,
                full,
                None,
                statistics.fmean(t.seconds for t in rs),
            )  # fmt: skip
        )
    paired(rows, trials, kinds)
    return {
        "instructsift": __version__,
        "command": " ".join(["instructsift", *sys.argv[1:]]) if Path(sys.argv[0]).name == "instructsift" else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "spec": spec.model_dump(),
        "data": {"path": dataset.path, "examples": len(dataset.examples), "rejected": len(dataset.rejects)},
        "eval": {
            "path": held_out.path,
            "examples": len(held_out.examples),
            "answer_tokens": trials[0].eval_tokens if trials else None,
        },
        "budget": budget.as_dict(),
        "base": {"model": spec.base, "fingerprint": runner.source.fingerprint},
        "finetune": asdict(runner.config),
        "machine": machine(),
        "random": rand,
        "full": full,
        "selections": {
            s.method: {
                "kept": len(s.picked),
                "ranked": len(s.positions),
                "seconds": s.seconds,
                "steps": s.steps,
                "ids": [dataset.examples[i].id for i in s.picked],
            }  # fmt: skip
            for s in selections
        },
        "trials": [{**t.as_dict(), "kind": kinds[t.name]} for t in trials],
        "rows": rows,
    }


def lengths(s: Selected, tokens: list[int]) -> dict[str, Any]:
    """The length diagnostic of a method's run (`experiments.length`): ρ of its score with trained answer
    tokens over the pool, its pick's mean tokens against the pool's."""
    from .experiments.length import of_run

    return of_run(s.run, tokens, s.picked)


def more_eval_columns(results: dict[str, Any], sets: Sequence[Any], trials: list[Any], kinds: dict[str, str]) -> None:
    """The other held-out sets: `results["more_evals"]` names them, and each row gains `more_evals`, one
    {eval_loss, delta_random, random_ci} per set (the random mean and interval as for the main set)."""
    from .experiments.intervals import mean_losses, paired_difference

    results["more_evals"] = [{"path": s.path, "examples": len(s.examples)} for s in sets]
    if not sets:
        return
    by_name = {t.name: t for t in trials}
    randoms = [t for t in trials if kinds[t.name] == "random"]
    for row in results["rows"]:
        row["more_evals"] = []
        for j in range(len(sets)):
            rand = [t.more_evals[j] for t in randoms]
            mean = statistics.fmean(r["loss"] for r in rand) if rand else None
            if row["kind"] == "random-mean":
                row["more_evals"].append({"eval_loss": mean, "delta_random": 0.0 if rand else None, "random_ci": None})
                continue
            mine = by_name[row["name"]].more_evals[j]
            ci = None
            if rand and row["kind"] == "method":
                p = paired_difference(mine["losses"], mean_losses([r["losses"] for r in rand]), mine["counts"])
                ci = [p.low, p.high]
            row["more_evals"].append(
                {"eval_loss": mine["loss"], "delta_random": mine["loss"] - mean if rand else None, "random_ci": ci}
            )


def paired(rows: list[dict[str, Any]], trials: list[Any], kinds: dict[str, str]) -> None:
    """Each method's row gains its paired difference, with a 95% bootstrap interval over the held-out
    examples, against the mean of the random picks (`random_ci`) and against `longest` when it ran
    (`delta_longest`, `longest_ci`); None where a trial has no per-example losses (cached by an older
    version) or there is nothing to compare with."""
    from .experiments.intervals import mean_losses, paired_difference

    with_losses = {t.name: t for t in trials if t.eval_losses is not None}
    randoms = [t for t in trials if kinds[t.name] == "random"]
    rand = (
        mean_losses([t.eval_losses for t in randoms])
        if randoms and all(t.name in with_losses for t in randoms)
        else None
    )
    longest = with_losses.get("longest")
    for row in rows:
        row["random_ci"] = row["delta_longest"] = row["longest_ci"] = None
        t = with_losses.get(row["name"])
        if t is None or row["kind"] != "method":
            continue
        if rand is not None:
            p = paired_difference(t.eval_losses, rand, t.eval_counts)
            row["random_ci"] = [p.low, p.high]
        if longest is not None and t is not longest:
            p = paired_difference(t.eval_losses, longest.eval_losses, t.eval_counts)
            row["delta_longest"], row["longest_ci"] = p.delta, [p.low, p.high]


def _row(name: str, kind: str, n: int, tokens: int, trained: int, steps: int, loss: float, rand: dict | None,
         full: float | None, select_s: float | None, train_s: float) -> dict[str, Any]:  # fmt: skip
    d_rand = loss - rand["mean"] if rand else None
    sd = rand["sd"] if rand else None
    return {
        "name": name,
        "kind": kind,
        "n": n,
        "tokens": tokens,
        "trained_tokens": trained,
        "steps": steps,
        "eval_loss": loss,
        "delta_random": d_rand,
        "z_random": d_rand / sd if d_rand is not None and sd else None,
        "delta_full": loss - full if full is not None else None,
        "select_seconds": select_s,
        "train_seconds": train_s,
    }


def machine() -> dict[str, Any]:
    """What ran it: CPU, memory, accelerator and library versions."""
    import importlib.metadata as md

    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        text = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem = None
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(mem, 1) if mem else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        **versions,
    }


# -- writing -----------------------------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _signed(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The table (method, n, tokens, eval loss, Δ vs mean random with the random spread, Δ vs full, time)."""
    r, ft, b = results["random"], results["finetune"], results["budget"]
    mode = f"LoRA r{ft['lora_r']}" if ft["lora"] else "full fine-tuning"
    lr = ft["lr"] if ft["lr"] is not None else (2e-4 if ft["lora"] else 2e-5)
    m = results["machine"]
    lines = [
        "# instructsift compare",
        "",
        f"- data: `{results['data']['path']}` ({results['data']['examples']:,} examples); budget {_budget_text(b)}",
        f"- held out: `{results['eval']['path']}` ({results['eval']['examples']:,} examples, "
        f"{results['eval']['answer_tokens'] or 0:,} answer tokens)",
        f"- base model: {results['base']['model']}; {mode}, {ft['epochs']:g} epochs, lr {lr:g}, batch {ft['batch_size']}"
        f"×{ft['grad_accum']}, max length {ft['max_length']}, template {ft['template']}, seed {ft['seed']}",
        f"- machine: {m['cpu']} ({m['cpus']} CPUs{', ' + m['gpu'] if m['gpu'] else ''}), torch {m['torch']}; "
        f"total {duration(results.get('seconds'))}",
    ]
    if r:
        spread = f" ± {r['sd']:.4f} (sd)" if r["sd"] is not None else ""
        lines.append(
            f"- random: mean eval loss {r['mean']:.4f}{spread} over {r['seeds']} seeds, "
            f"range {r['min']:.4f} to {r['max']:.4f}"
        )
    more = results.get("more_evals", [])
    for j, e in enumerate(more):
        lines.append(
            f"- held out {j + 2}: `{e['path']}` ({e['examples']:,} examples): columns `eval loss {j + 2}` and after"
        )
    judged = results.get("judge")
    if judged:
        lines.append(
            f"- win rate vs random: {judged['judge']}; against {judged['reference_note']}; {judged['standard']}; "
            f"greedy answers of at most {judged['generation']['max_new_tokens']} new tokens"
        )
    lines += [
        "",
        "Eval loss: mean cross-entropy per answer token on the held-out set, lower is better. Δ < 0: lower loss than "
        "the mean of the random picks (z: Δ in random standard deviations) or than all the data. Trained: the answer "
        "tokens trained per epoch (after the max-length cut; prompt tokens are not trained); steps: optimizer steps.",
        "",
        "| method | n | trained | steps | eval loss | Δ vs random | 95% CI | z | Δ vs longest | 95% CI | Δ vs full "
        "| ρ length | tokens pick/pool | select time | train+eval time |"
        + (" win rate vs random |" if judged else "")
        + "".join(f" eval loss {j + 2} | Δ vs random {j + 2} | 95% CI {j + 2} |" for j in range(len(more))),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if judged else "")
        + "---:|---:|---:|" * len(more),
    ]
    for row in results["rows"]:
        z = "-" if row["z_random"] is None else f"{row['z_random']:+.2f}"
        lines.append(
            f"| {row['name']} | {row['n']:,} | {row['trained_tokens']:,} | {row['steps']:,} | {row['eval_loss']:.4f} | "
            f"{_signed(row['delta_random'])} | {_ci(row.get('random_ci'))} | {z} | {_signed(row.get('delta_longest'))} "
            f"| {_ci(row.get('longest_ci'))} | {_signed(row['delta_full'])} | {_length(row.get('length'))} | "
            f"{duration(row['select_seconds'])} | {duration(row['train_seconds'])} |"
            + (f" {_win(row)} |" if judged else "")
            + "".join(
                f" {_loss(e['eval_loss'])} | {_signed(e['delta_random'])} | {_ci(e['random_ci'])} |"
                for e in row.get("more_evals", [])
            )  # fmt: skip
        )
    words = [_in_words(row) for row in results["rows"] if row["kind"] == "method"]
    if any(row["kind"] == "method" for row in results["rows"]):
        lines += [
            "",
            "95% CI: a paired bootstrap over the held-out examples (2,000 resamples, seed 0). ρ length: "
            "Spearman's ρ between the method's score (ranked first = higher) and trained answer tokens over the "
            "pool; tokens pick/pool: its pick's mean trained answer tokens over the pool's.",
            "",
        ]
        lines += [f"- {w}" for w in words if w]
    return "\n".join(lines) + "\n"


def _length(d: dict[str, Any] | None) -> str:
    """ρ and the pick's mean tokens over the pool's, two cells."""
    if not d:
        return "- | -"
    rho = "-" if d["rho"] is None else f"{d['rho']:+.2f}"
    ratio = "-" if not d["pool_mean_tokens"] else f"{d['pick_mean_tokens'] / d['pool_mean_tokens']:.2f}x"
    return f"{rho} | {ratio}"


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _in_words(row: dict[str, Any]) -> str:
    """What a method's intervals say, in words."""
    said = []
    for what, delta, ci in (("random", row["delta_random"], row.get("random_ci")),
                            ("longest", row.get("delta_longest"), row.get("longest_ci"))):  # fmt: skip
        if ci is None:
            continue
        if ci[0] <= 0 <= ci[1]:
            said.append(f"no difference from {what} shown (the interval includes zero)")
        else:
            said.append(f"{'lower' if delta < 0 else 'higher'} loss than {what}")
    d = row.get("length") or {}
    if d.get("length_filter"):
        said.append(f"mostly a length filter on this data (ρ = {d['rho']:.2f} between {d['score']} and answer tokens)")
    return f"{row['name']}: {'; '.join(said)}" if said else ""


def _budget_text(b: dict[str, Any]) -> str:
    if b.get("tokens") is not None:
        return f"{b['tokens']:,} trained answer tokens per pick ({100 * b['tokens'] / max(b['of_tokens'], 1):.1f}%)"
    return f"{b['examples']:,} examples ({100 * b['examples'] / b['of']:.1f}%)"


def _win(row: dict[str, Any]) -> str:
    return "-" if row.get("win_rate") is None else f"{row['win_rate']:.3f} (n={row['win_n']})"


def plot_loss(results: dict[str, Any], target: Path) -> None:
    """Eval loss per method (dots), the random picks' range (band) and mean, and the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["kind"] != "random-mean"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    colors = {"method": "tab:blue", "random": "tab:gray", "full": "tab:green"}
    for y, row in enumerate(rows):
        ax.plot(row["eval_loss"], y, "o", color=colors[row["kind"]])
    r, full = results["random"], results["full"]
    if r:
        ax.axvspan(r["min"], r["max"], color="tab:gray", alpha=0.2, label=f"random range ({r['seeds']} seeds)")
        ax.axvline(r["mean"], color="tab:gray", linestyle=":", label="random mean")
    if full is not None:
        ax.axvline(full, color="tab:green", linestyle="--", label="all data")
    ax.set_yticks(range(len(rows)), [f"{row['name']} (n={row['n']:,})" for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("held-out answer loss (lower is better)")
    ax.set_title(f"{results['base']['model']}, budget {_budget_text(results['budget'])}")
    if r or full is not None:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)


def write_results(results: dict[str, Any], out: Path, *, plot: bool = True) -> None:
    """results.json, results.md and loss.png, written together: the folder appears whole or not at all."""
    from .atomic import atomic_path

    with atomic_path(out, directory=True) as tmp:
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        (tmp / "results.md").write_text(markdown(results), encoding="utf-8")
        if plot:
            plot_loss(results, tmp / "loss.png")


__all__ = ["CompareSpec", "compare", "load_spec", "markdown", "parse_budget", "parse_sets", "random_subset"]
