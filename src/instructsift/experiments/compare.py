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
random --seed S`. All trials go through `runner`, cached: a killed comparison resumes, and a method added
later adds one trial.

`target` (`--target FILE`, with `target_task_field`) gives examples of the tasks to select for to every
target-aware method (`rds`); the others ignore them. A trial is keyed by its pick's rows (`runner`), and
the targets decide rds's pick (their encoding is cached by content), so other targets train rds's arms again
where its pick changes, and nothing else. `LABEL=METHOD` in `methods` is another arm of METHOD, with the
options under LABEL (`rds-white=rds` with `options: {rds-white: {whiten: true}}`).

The output folder holds `results.json` (every number, setting and the machine), `results.md` (the table)
and `loss.png` (eval loss per method, the random band and the full-data line; needs matplotlib:
`pip install 'instructsift[plot]'`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.errors import OptionError, literal
from ..errors import UsageError
from .arms import Budget, arm, method_options, select_with, takes_targets, warn_target_overlap
from .compare_spec import CompareSpec, data_input, load_spec, local_path, parse_sets, save_spec, spec_from
from .plot import plot_curve, plot_loss, require_matplotlib
from .stats import lengths, more_eval_columns, summarize
from .tables import curve_markdown, markdown


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
    log = log or (lambda _m: None)
    base, out = _folders(spec, output, base_dir)
    if len(spec.budgets()) > 1:
        return curve(spec, out, base, overwrite=overwrite, progress=progress, log=log)
    from ..api import read
    from ..models import use_cache_root
    from ..outputs import Output, check_inputs, check_outputs
    from ..train.finetune import optimizer_steps, training_costs
    from .runner import ExperimentRunner

    if not spec.methods and not spec.random_seeds and not spec.full:
        raise UsageError(
            "nothing to compare: give {methods}, {random_seeds} or {full}", "methods", "random_seeds", "full"
        )
    labels = [arm(m)[0] for m in spec.methods]
    dupes = sorted({m for m in labels if labels.count(m) > 1})
    if dupes:
        raise UsageError(f"{{methods}} names {literal(', '.join(dupes))} twice", "methods")
    if spec.target is not None and not any(takes_targets(m) for m in spec.methods):
        from .. import registry

        aware = ", ".join(e.name for e in registry.entries("method") if takes_targets(e.name))
        raise UsageError(f"{{target}}: none of the methods ({literal(', '.join(labels)) or 'none'}) selects for targets "
                         f"(the target-aware methods: {literal(aware)})", "target")  # fmt: skip
    data_path, eval_paths = data_input(base, spec.data), [data_input(base, e) for e in spec.evals]
    target_path = data_input(base, spec.target) if spec.target is not None else None
    check_inputs([data_path, *eval_paths, target_path])
    report = local_path(base, spec.report) if spec.report else None
    outputs = [Output(out, "compare", "--output")] + ([Output(report, "report", "--report")] if report else [])
    check_outputs([data_path, *eval_paths, *([target_path] if target_path else [])], outputs, overwrite=overwrite)
    if report is not None:
        from ..report import plotly_missing

        if why := plotly_missing():
            raise UsageError(f"--report {report}: {why}")
    if spec.plot:
        require_matplotlib()
    config = spec.finetune_config()
    for m in spec.methods:  # unknown methods and options fail now, not after an hour
        from .. import registry

        registry.get("method", arm(m)[1]).target.expand(method_options(spec, m, 1))
    judge = _judge(spec, base)  # a judge server that does not answer fails now, before any fine-tuning
    t_start = time.monotonic()
    cache_dir = local_path(base, spec.cache_dir) if spec.cache_dir else None
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
        trials_dir=local_path(base, spec.trials_dir) if spec.trials_dir else None,
    )  # fmt: skip
    with use_cache_root(cache_dir):
        costs = training_costs(dataset.examples, spec.base, config)
    tokens = [c.tokens for c in costs]
    budget = Budget.of(spec, tokens)
    log(f"budget: {budget.describe()}")
    if judge is not None:
        from .winrate import Answers

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
        from .winrate import run as judge_run

        results["judge"] = judge_run(spec, runner, answers, judge, trials, subsets, kinds, progress=progress)
        for row in results["rows"]:
            won = results["judge"]["trials"].get(row["name"])
            row["win_rate"], row["win_n"] = (won["win_rate"], won["n"]) if won else (None, None)
    results["seconds"] = time.monotonic() - t_start
    results["trained_now"] = len(runner.trained)
    write_results(results, out, plot=spec.plot)
    if report is not None:  # the loss table and plot, each method's scores and cut-offs, the picks' overlap
        from ..report import from_comparison, write_report

        write_report(from_comparison(out, dataset, {s.method: s.run for s in selections}, subsets), report)
    return results


def _folders(
    spec: CompareSpec, output: str | os.PathLike | None, base_dir: str | os.PathLike | None
) -> tuple[Path, Path]:
    """The folder relative paths are read from, and the output folder (`output`, else the spec's)."""
    base = Path(base_dir) if base_dir else Path.cwd()
    out = Path(output) if output is not None else (local_path(base, spec.output) if spec.output else None)
    if out is None:
        raise UsageError("compare needs an output folder (-o FOLDER)")
    return base, out


def curve(
    spec: CompareSpec, out: Path, base: Path, *, overwrite: bool, progress: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """A comparison at each of several budgets (`compare` with a list of budgets, `base` the folder its
    paths are read from): each one's whole comparison in `out/budget-<value>/` (trials cached as ever, so a
    budget added later costs its trials alone), and at the top `results.json` (every arm's eval loss, n and
    trained tokens per budget), `results.md` (the curves as a table) and `curve.png`."""
    from ..atomic import atomic_path
    from ..outputs import Output, check_outputs

    if spec.report:
        raise UsageError("--report shows one budget: give one budget, or open each budget-*/ folder's results")
    check_outputs([local_path(base, spec.data), *(local_path(base, e) for e in spec.evals)], [Output(out, "compare", "--output")],
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


def _judge(spec: CompareSpec, base: Path) -> Any:
    """The win rate's judge (checked against its server), or None without one."""
    if spec.judge is None:
        return None
    if spec.random_seeds < 1:
        raise UsageError("the win rate is against the first random seed's model: --random-seeds must be at least 1")
    j = spec.judge
    judge = (j.model_copy(update={"prompt": str(local_path(base, j.prompt))}) if j.prompt else j).judge()
    judge.check()
    return judge


def write_results(results: dict[str, Any], out: Path, *, plot: bool = True) -> None:
    """results.json, results.md and loss.png, written together: the folder appears whole or not at all."""
    from ..atomic import atomic_path

    with atomic_path(out, directory=True) as tmp:
        (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        (tmp / "results.md").write_text(markdown(results), encoding="utf-8")
        if plot:
            plot_loss(results, tmp / "loss.png")


__all__ = ["CompareSpec", "compare", "curve", "load_spec", "parse_sets", "save_spec", "spec_from", "write_results"]
