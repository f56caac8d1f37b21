"""`instructsift report`: one HTML page of a run's scores, selections and drops."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .core import _fail, _guard, _say, app
from .options import FormatOpt, Hub, OverwriteOpt, _check_paths, option_groups


@app.command("report")
@_guard
@option_groups
def report_cmd(
    scores: Annotated[
        Path, typer.Argument(metavar="SCORES", help="A score table (.parquet or .jsonl) from score or --save-scores.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The page to write (.html, self-contained).")],
    data: Annotated[
        str | None,
        typer.Option("--data", help="The scored data (a path or hub id): texts, read and rejected counts."),
    ] = None,
    dropped: Annotated[
        Path | None, typer.Option("--dropped", help="The run's --dropped file: what was dropped, and why.")
    ] = None,
    selection: Annotated[
        list[Path] | None, typer.Option("--selection", help="A selection (select's output) to overlap; repeatable.")
    ] = None,
    compare: Annotated[Path | None, typer.Option("--compare", help="A compare folder (its results.json).")] = None,
    rule: Annotated[Path | None, typer.Option("--rule", help="InstructMining's fitted rule (.json).")] = None,
    curve: Annotated[
        Path | None, typer.Option("--curve", help="InstructMining's subset-size curve (search.jsonl or .json).")
    ] = None,
    mining: Annotated[
        Path | None, typer.Option("--mining", help="InstructMining's output folder (rule.json, search.jsonl, ...).")
    ] = None,
    map_points: Annotated[int, typer.Option("--map-points", help="Most rows drawn on the map (0: no map).")] = 2000,
    color_by: Annotated[str | None, typer.Option("--color-by", help="Score column colouring the map first.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="The page's title.")] = None,
    bookkeeping: Annotated[
        bool,
        typer.Option("--bookkeeping", help="Also draw the bookkeeping columns (token and turn counts, ...)."),
    ] = False,
    format: FormatOpt = None,
    overwrite: OverwriteOpt = False,
    *,
    hub: Hub,
) -> None:
    """Write one HTML page: counts, score histograms with cut-offs, examples, correlations, overlaps, a map."""
    from ..report import from_files, plotly_missing, write_report

    if why := plotly_missing():
        _fail(why)
    extra = [data, dropped, *(selection or []), compare, rule, curve, mining]
    _check_paths([scores, *extra], [(output, "report", "--output")], overwrite)
    if data is None and any(dataclasses.astuple(hub)):
        raise UsageError("--split, --subset and --revision are --data's: give --data")
    report = from_files(scores, data=data, dropped=dropped, selections=selection or [], compare=compare, rule=rule,
                        curve=curve, mining=mining, title=title, format=format.value if format else None,
                        **dataclasses.asdict(hub))  # fmt: skip
    write_report(report, output, max_points=map_points, color_by=color_by, bookkeeping=bookkeeping)
    _say(f"report of {report.n} rows → {output}")
