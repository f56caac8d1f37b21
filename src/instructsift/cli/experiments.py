"""The experiment commands, which run pipelines many times: `compare` (fine-tune on each method's pick),
`design` and `mine` (InstructMining's experiment design and its whole run). Heavy imports stay inside
the commands."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..models.embedded import EMBEDDED
from .core import _fail, _guard, _say, app
from .method_options import with_params_options
from .options import (
    CacheOpt,
    Hub,
    OverwriteOpt,
    QuietOpt,
    Reading,
    ReportOpt,
    _method_help,
    option_groups,
)


@app.command("design")
@_guard
def design_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE...",
            help="The data to mix: NAME=FILE, or FILE (named by its stem); JSON arrays or JSON Lines of alpaca "
            "records (or LIMA-style conversations).",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for pool.json, eval.json and design.json.")],
    eval_source: Annotated[
        str, typer.Option("--eval-source", help="The source whose held-out answers are the eval set (good answers).")
    ],
    subsets: Annotated[int, typer.Option(help="Training subsets (the paper: 129).")] = 24,
    size: Annotated[int, typer.Option(help="Rows per subset.")] = 200,
    held_out: Annotated[int, typer.Option("--held-out", help="Held-out rows of --eval-source to evaluate on.")] = 100,
    per_source: Annotated[
        int | None, typer.Option("--per-source", help="At most this many pool rows of each source [all].")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration of the source proportions.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the draw.")] = 0,
) -> None:
    """Make InstructMining's experiment design: subsets mixing the sources at random proportions (e.g. strong
    and weak answers to the same instructions), and held-out answers of --eval-source whose instructions are
    in no subset."""
    from ..data.errors import OptionError, OutputError
    from ..experiments.design import load_sources, mixture_design, parse_sources

    files = parse_sources(sources)
    if eval_source not in files:
        raise OptionError(f"--eval-source {eval_source!r} is not one of the sources ({', '.join(files)})")
    if output.exists() and (not output.is_dir() or (any(output.iterdir()) and not (output / "design.json").exists())):
        raise OutputError(f"--output {output}: not a new folder nor a design folder")
    try:
        design = mixture_design(load_sources(files), n_subsets=subsets, size=size, held_out=held_out,
                                eval_source=eval_source, alpha=alpha, seed=seed, per_source=per_source)  # fmt: skip
    except ValueError as e:
        raise OptionError(str(e)) from None
    path = design.save(output)
    _say(
        f"{len(design.subsets)} subsets of {size} rows from a pool of {len(design.pool)}, {len(design.eval)} "
        f"held-out rows → {path}"
    )


def _mine() -> Any:
    """`mine`'s settings (the base model's fine-tuning, the indicators and their scorers' options, the size
    search): its options are generated from them."""
    from ..experiments.mine_run import MineSettings

    return MineSettings


@app.command("mine")
@_guard
@with_params_options(_mine, "mine")
def mine_cmd(
    design: Annotated[
        Path, typer.Argument(metavar="DESIGN", help="A design.json (from `instructsift design`) or its folder.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder: rule.json, summary.json, curve.png, search.jsonl, ...")
    ],
    *,
    settings: dict[str, Any] | None = None,  # the generated options stand here
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """InstructMining's whole run on a design: score the pool's indicators, fine-tune the base model on every
    subset and evaluate it, fit the rule, search the subset size with BlendSearch and sweep it. Rerun to resume."""
    from ..data.errors import options_named
    from ..experiments.mine_run import MineSettings, mine_design, report_lines

    arguments = MineSettings.model_validate(settings or {}).arguments()
    log = (lambda m: None) if quiet else (lambda m: _say(m, "dim"))
    try:
        with options_named({"out": "output", "low": "min_k", "high": "max_k"}):  # mine_design's names of these flags
            summary = mine_design(design, output, **arguments, cache_dir=cache_dir, progress=not quiet, log=log)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume (finished fine-tunings and trials are kept)")
    print("\n".join(report_lines(summary)))
    _say(f"rule, curve and summary → {output}")


def _win_rate() -> Any:
    """The judged win rate's settings (a compare recipe's judge mapping): `compare`'s win-rate options are
    generated from them, each flag declared on its field."""
    from ..experiments.winrate import JudgeSpec

    return JudgeSpec


def _tuning() -> Any:
    """`compare`'s fine-tuning settings (FinetuneConfig's, those `compare_spec.COMMAND_TUNING` offers): its
    fine-tuning options are generated from them."""
    from ..experiments.compare_spec import tuning_params

    return tuning_params()


@app.command("compare")
@_guard
@with_params_options(_win_rate, "win rate", "win_rate", panel="Win rate vs random", prefix="win rate: ",
                     show_default=False)  # fmt: skip
@with_params_options(_tuning, "compare", "tuning")
@option_groups
def compare_cmd(
    input: Annotated[
        str,
        typer.Argument(metavar="DATA", help="Data to select from (a path or hub id), or a compare recipe (.yaml)."),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for results.json, .md, loss.png.")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(help="Methods, comma-separated (LABEL=METHOD: another arm of METHOD): " + _method_help()),
    ] = None,
    budget: Annotated[str | None, typer.Option(help="Examples per selection: a count (450) or a ratio (0.05).")] = None,
    budget_tokens: Annotated[
        str | None,
        typer.Option(
            "--budget-tokens",
            help="Instead of --budget: trained answer tokens per selection (after the --max-length cut; prompts do "
            "not count), a count (200000) or a ratio of the data set's (0.05).",
        ),
    ] = None,
    eval: Annotated[
        list[str] | None,
        typer.Option(
            "--eval",
            help="Held-out data: each tuned model's answer loss (repeat it: a loss column per set). A hub data set "
            "spells its own split: ID[@REVISION][:SUBSET]:SPLIT (org/name:test).",
        ),
    ] = None,
    base: Annotated[str, typer.Option(help="The base model fine-tuned on every pick (as --model).")] = EMBEDDED,
    random_seeds: Annotated[int, typer.Option("--random-seeds", help="Random picks of the same size.")] = 3,
    full: Annotated[bool, typer.Option("--full", help="Also fine-tune on all the data.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="A method option: METHOD.KEY=VALUE, or KEY=VALUE for all.")
    ] = None,
    tuning: dict[str, Any] | None = None,  # the fine-tuning options stand here
    allow_short: Annotated[
        bool, typer.Option("--allow-short", help="Compare a method's pick even when its filters keep fewer.")
    ] = False,
    trials_dir: Annotated[
        Path | None,
        typer.Option(
            "--trials-dir",
            help="Also keep each finished trial here, and read trials back from here: a folder in git or on a "
            "shared disk lets a comparison spread over machines resume.",
        ),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="No loss.png (it needs matplotlib).")] = False,
    save_recipe: Annotated[
        Path | None, typer.Option("--save-recipe", help="Write this comparison as a recipe.")
    ] = None,
    report: ReportOpt = None,
    *,
    reading: Reading,
    cache_dir: CacheOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    win_rate: dict[str, Any] | None = None,  # the win-rate options stand here
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Examples of the tasks to select for, given to the target-aware methods (rds): a file, a folder, "
            "or a hub data set, its split spelled ID[@REVISION][:SUBSET]:SPLIT.",
        ),
    ] = None,
    target_task_field: Annotated[
        str | None,
        typer.Option("--target-task-field", help="--target: the target records' task field [each row a task]."),
    ] = None,
    hub: Hub,
) -> None:
    """Fine-tune on each method's pick, on random picks of the same size and on all the data; compare eval loss
    (and, with --judge-url, a judge's win rate of each tuned model's answers against the random model's)."""
    from ..experiments.compare import compare, load_spec, parse_sets, save_spec
    from ..experiments.compare_spec import command_spec
    from ..experiments.winrate import from_options

    judged = from_options(win_rate or {})
    if Path(input).suffix in (".yaml", ".yml"):
        if methods or budget or budget_tokens or eval or target or target_task_field or any(dataclasses.astuple(hub)):
            _fail("with a compare recipe, give --methods, --budget (or --budget-tokens), --eval, --target and "
                  "--split, --subset, --revision in the recipe")  # fmt: skip
        if judged:
            _fail("with a compare recipe, give the judge in the recipe (judge: {url: ..., model: ...})")
        if tuning or set_ or full or allow_short:  # a recipe holds them: an option given here would be ignored
            _fail("with a compare recipe, give the fine-tuning settings (finetune: {epochs: ...}), --set (options:), "
                  "--full and --allow-short in the recipe")  # fmt: skip
        spec, base_dir = load_spec(input)
        spec = spec.model_copy(update={"report": str(report.resolve())}) if report else spec
        spec = spec.model_copy(update={"trials_dir": str(trials_dir.resolve())}) if trials_dir else spec
    else:
        if not eval:  # one of --budget or --budget-tokens: checked with the spec (`size.one_of`)
            _fail("compare needs --eval and one of --budget or --budget-tokens (or a compare recipe)")
        spec = command_spec(dict(
            data=str(input), **dataclasses.asdict(hub), eval=[str(e) for e in eval], methods=[m.strip() for m in (methods or "").split(",") if m.strip()],
            budget=budget or None, budget_tokens=budget_tokens or None, base=base, random_seeds=random_seeds, full=full, options=parse_sets(set_ or []),
            allow_short=allow_short, plot=not no_plot, format=reading.format.value if reading.format else None,
            on_error=reading.on_error.value, cache_dir=str(cache_dir) if cache_dir else None,
            output=str(output) if output else None, report=str(report) if report else None,
            target=str(target) if target else None, target_task_field=target_task_field,
            trials_dir=str(trials_dir) if trials_dir else None,
        ), tuning or {}, judged)  # fmt: skip
        base_dir = Path.cwd()
    if save_recipe is not None:
        from ..outputs import Output, check_outputs

        check_outputs([Path(input)], [Output(save_recipe, "recipe", "--save-recipe")], overwrite=overwrite)
        save_spec(spec, save_recipe, comment="instructsift " + " ".join(sys.argv[1:]), base_dir=base_dir)
    log = lambda m: _say(m, "dim")  # noqa: E731
    r = compare(spec, output, base_dir=base_dir, overwrite=overwrite, progress=not quiet, log=log)
    out = output or base_dir / (spec.output or "")  # a recipe's output is relative to its folder
    print((out / "results.md").read_text(encoding="utf-8"))
    shown = f" (report: {base_dir / spec.report})" if spec.report else ""
    _say(f"{len(r['trials'])} trials ({r['trained_now']} run now) → {out}{shown}")
