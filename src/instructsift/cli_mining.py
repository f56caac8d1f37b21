"""`instructsift design` and `instructsift mine`: InstructMining's experiment design and its whole run.

Registered on the main app by `cli.py` (imported at its end); heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_app import (
    CacheOpt,
    DeviceOpt,
    QuietOpt,
    RewardFormatOpt,
    RewardModelOpt,
    UnievalOpt,
    _fail,
    _guard,
    app,
    err,
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
    from .data.errors import OptionError, OutputError
    from .experiments.design import load_sources, mixture_design, parse_sources

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
    err.print(
        f"{len(design.subsets)} subsets of {size} rows from a pool of {len(design.pool)}, {len(design.eval)} "
        f"held-out rows → {path}",
        highlight=False,
        markup=False,
    )


@app.command("mine")
@_guard
def mine_cmd(
    design: Annotated[
        Path, typer.Argument(metavar="DESIGN", help="A design.json (from `instructsift design`) or its folder.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder: rule.json, summary.json, curve.png, search.jsonl, ...")
    ],
    base: Annotated[str, typer.Option(help="The base model fine-tuned on every subset (as --model).")] = "embedded",
    model: Annotated[str, typer.Option(help="The model that scores the ppl and token-length indicators.")] = "embedded",
    reward_model: RewardModelOpt = None,
    reward_format: RewardFormatOpt = None,
    encoder: Annotated[
        str | None, typer.Option(help="knn indicators: embedded (all-MiniLM-L6-v2), a folder or hub id [embedded].")
    ] = None,
    unieval: UnievalOpt = None,
    indicators: Annotated[
        str | None,
        typer.Option(
            help="Indicators, comma-separated [output_tokens,input_tokens,mtld,ppl,knn6, + reward or "
            "reward_standin with --reward-model, + naturalness,coherence,understandability with --unieval]."
        ),
    ] = None,
    epochs: Annotated[float, typer.Option(help="Fine-tuning passes over each subset.")] = 1.0,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [LoRA 2e-4].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per step.")] = 8,
    max_length: Annotated[
        int, typer.Option("--max-length", help="Tokens per sequence (fine-tuning, evaluation and the ppl scorer).")
    ] = 512,
    seed: Annotated[int, typer.Option(help="Fine-tuning seed.")] = 42,
    full_finetune: Annotated[
        bool, typer.Option("--full-finetune", help="Tune every weight instead of a LoRA adapter.")
    ] = False,
    device: DeviceOpt = "auto",
    min_k: Annotated[int, typer.Option("--min-k", help="Smallest subset size the search tries.")] = 10,
    max_k: Annotated[
        int | None, typer.Option("--max-k", help="Largest subset size the search tries [the pool].")
    ] = None,
    trials: Annotated[int, typer.Option(help="BlendSearch trials (distinct sizes) over k.")] = 20,
    sweep: Annotated[int, typer.Option(help="Evenly log-spaced sizes for the curve.")] = 8,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """InstructMining's whole run on a design: score the pool's indicators, fine-tune the base model on every
    subset and evaluate it, fit the rule, search the subset size with BlendSearch and sweep it. Rerun to resume."""
    from .experiments.mine_run import mine_design, report_lines
    from .train.finetune import FinetuneConfig

    config = FinetuneConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed,
                            lora=not full_finetune, device=device)  # fmt: skip
    options = {"model": model, "max_length": max_length}
    options |= {k: v for k, v in dict(reward_model=reward_model, reward_format=reward_format, encoder=encoder, unieval=unieval,
                                      device=None if device == "auto" else device).items() if v is not None}  # fmt: skip
    names = [n.strip() for n in indicators.split(",") if n.strip()] if indicators else None
    log = (lambda m: None) if quiet else (lambda m: err.print(m, style="dim", highlight=False, markup=False))
    try:
        summary = mine_design(design, output, base=base, config=config, indicators=names, options=options, low=min_k,
                              high=max_k, trials=trials, sweep_points=sweep, cache_dir=cache_dir, progress=not quiet,
                              log=log)  # fmt: skip
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume (finished fine-tunings and trials are kept)")
    print("\n".join(report_lines(summary)))
    err.print(f"rule, curve and summary → {output}", highlight=False, markup=False)
