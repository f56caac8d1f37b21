"""The data commands: `score`, `select` (their method options generated from the registry), `run` (a
recipe) and `methods`. Thin: every command calls the Python API."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from .core import _guard, _say, _warn, app
from .method_options import MethodCommand, with_method_options
from .options import (
    AllowEmptyOpt,
    DataArg,
    DroppedOpt,
    Export,
    MethodOpt,
    OverwriteOpt,
    QuietOpt,
    ReportOpt,
    Run,
    Runner,
    Source,
    _data_options,
    _local,
    option_groups,
)


def _missing_summary(table: Any) -> None:
    """For each scorer's declared scores: how many of the rows it was given it scored, how many it could
    not (and why); rows an earlier step had dropped were not given to it."""
    from ..accounting import missing_by_scorer

    for label, given, reasons in missing_by_scorer(table):
        n = sum(reasons.values())
        why = "; ".join(f"{k}: {v}" for k, v in reasons.most_common(3)) + ("; ..." if len(reasons) > 3 else "")
        left = table.num_rows - given
        _say(
            f"{label}: {given - n} scored, {n} missing"
            + (f" ({why})" if n else "")
            + (f"; {left} dropped before this step" if left else "")
        )


def _score_exclude() -> Iterable[str]:
    """`score` takes no size: the method options of `Size` are `select`'s."""
    from ..methods.base import Size

    return Size.model_fields


@app.command("score", cls=MethodCommand)
@_guard
@with_method_options(exclude=_score_exclude)
@option_groups
def score_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="SCORES.parquet or .jsonl: one row per example.")],
    method: MethodOpt,
    overwrite: OverwriteOpt = False,
    allow_empty: AllowEmptyOpt = False,
    *,
    method_options: dict[str, Any] | None = None,  # the method options stand here
    run: Run,
    source: Source,
) -> None:
    """Score every example; write the score table (row, id, content_hash, then the method's columns).
    `score --method M --help` shows M's options."""
    from ..recipe import from_method

    options = _plain(method_options or {})
    recipe = from_method(
        method,
        options,
        score_only=True,
        **_settings(input, None, run, allow_empty),
        **_data_options(source),
        scores=str(output),
    )
    result = _run(recipe, overwrite, run.quiet, protect=_local_paths(options))
    _score_summary(result, output, run.quiet)


@app.command("select", cls=MethodCommand)
@_guard
@with_method_options()
@option_groups
def select_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Selected records (format: the input's, or --to).")],
    method: MethodOpt,
    scores: Annotated[Path | None, typer.Option(help="Use this score table instead of scoring.")] = None,
    rescore_changed: Annotated[
        bool, typer.Option("--rescore-changed", help="With --scores: score again the rows whose content changed.")
    ] = False,
    save_scores: Annotated[Path | None, typer.Option(help="Also write the score table here.")] = None,
    overwrite: OverwriteOpt = False,
    allow_empty: AllowEmptyOpt = False,
    with_scores: Annotated[
        bool,
        typer.Option(
            "--with-scores",
            help="Add the scores to each written record, and say how much the pick is a length filter (its "
            "trained tokens counted as the method's token-budget options say).",
        ),
    ] = False,
    dedup_exact: Annotated[
        bool,
        typer.Option("--dedup-exact", help="First drop exact duplicates (same roles and texts), keeping the first."),
    ] = False,
    dropped: DroppedOpt = None,
    report: ReportOpt = None,
    save_recipe: Annotated[
        Path | None, typer.Option("--save-recipe", help="Write this run as a recipe (.yaml) that `run` repeats.")
    ] = None,
    *,
    method_options: dict[str, Any] | None = None,  # the method options stand here
    run: Run,
    source: Source,
    export: Export,
) -> None:
    """Score (or load scores), select with a method's rules, and write the kept records.
    `select --method M --help` shows M's options."""
    from ..experiments.length import counting_options
    from ..recipe import from_method

    # how --with-scores' length diagnostic counts trained tokens, without a token budget
    options, counting = counting_options(_plain(method_options or {}), with_scores)
    recipe = from_method(
        method,
        options,
        **_settings(input, output, run, allow_empty),
        **_data_options(source, export),
        scores=str(save_scores) if save_scores else None,
        from_scores=str(scores) if scores else None,
        rescore_changed=rescore_changed,
        dedup_exact=dedup_exact,
        dropped=str(dropped) if dropped else None,
        report=str(report) if report else None,
        with_scores=with_scores,
    )
    if save_recipe is not None:
        _save_recipe(recipe, save_recipe, overwrite)
    result = _run(recipe, overwrite, run.quiet, protect=_local_paths({**options, **counting}))
    _select_summary(result, run.quiet, counting)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """Method options as a recipe writes them: paths as text."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}


def _local_paths(options: dict[str, Any]) -> list[Path]:
    """The local files and folders the method options name (a model, a prompt, target examples): read, so
    no output may write over them."""
    found = []
    for value in options.values():
        if isinstance(value, str) and value:
            local = _local(value)
            if local is not None and local.exists():
                found.append(local)
    return found


@app.command("run")
@_guard
@option_groups
def run_cmd(
    recipe_file: Annotated[Path, typer.Argument(metavar="RECIPE", help="A recipe (.yaml): input, steps, outputs.")],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Replace the recipe's input (a path or a hub id).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Replace the recipe's output.")] = None,
    dropped: DroppedOpt = None,
    *,
    runner: Runner,
    report: ReportOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    source: Source,
    export: Export,
) -> None:
    """Run a recipe: read its input, run its steps in order (score, select, fit), write its outputs. The data
    options replace the recipe's."""
    from ..recipe import load

    engine = runner.settings()
    overrides = {"input": input, "output": output, "dropped": dropped, "report": report,
                 "ray_address": engine["ray_address"], **_data_options(source, export)}  # fmt: skip
    recipe = load(recipe_file, {**overrides, "engine": engine["engine"]})
    result = _run(recipe, overwrite, quiet)
    if recipe.settings.output is None:
        _score_summary(result, recipe.path("scores"), quiet)
    else:
        _select_summary(result, quiet)


def _settings(input: str | Path, output: Path | None, run: Run, allow_empty: bool) -> dict[str, Any]:
    """The recipe settings of `score` and `select`."""
    return dict(
        **run.runner.settings(),
        input=str(input),
        output=str(output) if output else None,
        format=run.reading.format.value if run.reading.format else None,
        on_error=run.reading.on_error.value,
        rejects=str(run.rejects) if run.rejects else None,
        cache_dir=str(run.cache_dir) if run.cache_dir else None,
        use_cache=not run.no_cache,
        allow_empty=allow_empty,
    )


def _save_recipe(recipe: Any, target: Path, overwrite: bool) -> None:
    from ..outputs import Output, check_outputs

    check_outputs([recipe.path("input")], [Output(target, "recipe", "--save-recipe")], overwrite=overwrite)
    recipe.save(target, comment="instructsift " + " ".join(sys.argv[1:]))
    _say(f"recipe → {target}")


def _run(recipe: Any, overwrite: bool, quiet: bool, protect: Iterable[Path] = ()) -> Any:
    from ..pipeline import run

    return run(
        recipe,
        progress=not quiet,
        overwrite=overwrite,
        protect=list(protect),
        log=(lambda m: None) if quiet else (lambda m: _say(m, "dim")),
        warn=_warn,
    )


def _score_summary(result: Any, output: Any, quiet: bool = False) -> None:
    """What was read, scored and rejected (not with -q, which prints only warnings and errors)."""
    from ..accounting import unscored_mask

    if quiet:
        return
    table, dataset = result.table, result.picked.dataset
    _missing_summary(table)
    unscored = sum(unscored_mask(table))
    rej = result.written.get("rejects")
    line = f"read {dataset.n_read} · scored {table.num_rows - unscored} · unscored {unscored} · rejected {len(dataset.rejects)}"
    _say(f"{line} → {output}" + (f" (rejects: {rej})" if rej else ""))
    _notes_summary(dict(dataset.notes.most_common()))


def _select_summary(result: Any, quiet: bool = False, counting: dict[str, Any] | None = None) -> None:
    """What was read, kept, dropped and rejected; a warning when nothing was kept (only that with -q).
    With --with-scores, the length diagnostic (`experiments.length`), its tokens counted as `counting` says."""
    s = result.summary()
    if any(st.kind == "score" for st in result.recipe.steps) and not quiet:
        _missing_summary(result.table)
    if not s["kept"] and result.picked.dataset.examples:
        _warn("the selection kept no rows: every row was dropped by the method's rules (see the reasons below)")
    if quiet:
        return
    why = ", ".join(f"{k}: {v}" for k, v in s["dropped_by"].items())
    rej, dropped = result.written.get("rejects"), result.written.get("dropped")
    _say(
        f"read {s['read']} · kept {s['kept']}"
        + (f" ({'; '.join(s['shares'])})" if s["shares"] else "")
        + f" · dropped {s['dropped']}"
        + (f" ({why})" if why else "")
        + f" · rejected {s['rejected']} → {result.written.get('output')}"
        + (f" (rejects: {rej})" if rej else "")
        + (f" (dropped: {dropped})" if dropped else "")
        + (f" (report: {result.written['report']})" if result.written.get("report") else "")
    )
    _notes_summary(s["notes"])
    if result.recipe.settings.with_scores and result.picked.dataset.examples:
        from ..experiments.length import of_run, summary_line, trained_tokens

        tokens, counted = trained_tokens(result, **(counting or {}))
        _say(summary_line(of_run(result, tokens), counted))


def _notes_summary(notes: dict[str, int]) -> None:
    """What reading noticed but kept (trailing turns, exact duplicates), so that users can act on it."""
    if notes:
        _say("noticed: " + ", ".join(f"{k}: {v}" for k, v in notes.items()))


@app.command("methods")
@_guard
def methods_cmd(
    name: Annotated[str | None, typer.Argument(metavar="[METHOD]", help="Show this method only.")] = None,
) -> None:
    """List the methods with their papers, what a ratio is a share of, defaults and options (from the
    registry): a block per method, wrapped to the terminal's width."""
    import shutil
    import textwrap

    from .. import registry

    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100))
    aliases = registry.aliases("method")
    entries = [registry.get("method", name)] if name else registry.entries("method")

    def para(text: str, indent: str = "  ", hang: str = "    ") -> str:
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=hang, break_on_hyphens=False)

    blocks = []
    for entry in entries:
        m = entry.target
        also = [a for a, t in aliases.items() if t == m.name]
        lines = [m.name + (f" (alias: {', '.join(also)})" if also else ""), para(m.paper), para(m.summary)]
        if m.ratio_line():
            lines.append(para(m.ratio_line()))
        if m.defaults:
            lines.append("  defaults:")
            lines += [para(f"{k}: {v if v != '' else repr(v)}", "    ", "      ") for k, v in m.defaults.items()]
        options = ", ".join("--" + k.replace("_", "-") for k in m.Params.model_fields)
        lines.append(para(f"options: {options}"))
        blocks.append("\n".join(lines))
    typer.echo("\n\n".join(blocks))
    if not name:
        steps = "; ".join(f"{k}: {', '.join(registry.names(k))}" for k in ("score", "select", "fit"))
        _say(para(f"steps for recipes: {steps}", "", "  "))
