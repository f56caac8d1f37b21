"""The training commands: `finetune`, `evaluate`, `train-scar` and `synthesize` (SCAR's answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..models.embedded import EMBEDDED
from .core import _fail, _guard, _say, _warn, app, err
from .method_options import with_params_options
from .model_options import BatchOpt, DeviceOpt, DtypeOpt, ModelOpt
from .options import (
    CacheOpt,
    DataArg,
    Input,
    ModelRun,
    OnError,
    OnErrorOpt,
    OverwriteOpt,
    QuietOpt,
    _check_paths,
    _model_input,
    _read,
    option_groups,
)


def _finetune_params() -> Any:
    """The `finetune` fit step's parameter model (its training settings, generated from `FinetuneConfig`):
    the command's training options are generated from it."""
    from .. import registry

    return registry.get("fit", "finetune").params


@app.command("finetune")
@_guard
@with_params_options(_finetune_params, "finetune")  # --model and --trust-remote-code: its own
@option_groups
def finetune_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the fine-tuned model (or adapter).")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the model folder an earlier finetune wrote at --output.")
    ] = False,
    model: ModelOpt = EMBEDDED,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore checkpoints of an interrupted run.")] = False,
    *,
    settings: dict[str, Any] | None = None,  # the training options stand here
    run: ModelRun,
) -> None:
    """Fine-tune a causal LM on DATA (loss on answer tokens only; LoRA unless --full). Rerun to resume."""
    from ..models import use_cache_root
    from ..train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(**(settings or {}), trust_remote_code=run.trust_remote_code)
    _check_paths([input, *_model_input(model)], [(output, "model", "--output")], overwrite)
    dataset = _read(input, run.reading, run.hub)
    try:
        with use_cache_root(run.cache_dir):
            r = finetune(dataset, model, output, config, progress=not run.quiet, resume=not restart)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume from the last checkpoint")
    for ex_id, why in r.skipped[:5]:
        err.print(f"[yellow]skipped[/] {escape(f'{ex_id}: {why}')}", highlight=False)
    loss = f"{r.train_loss:.4f}" if r.train_loss is not None else "-"
    _say(
        f"trained on {r.sequences} sequences ({r.examples - len(r.skipped)} examples, {len(r.skipped)} skipped) · "
        f"{r.steps} steps · train loss {loss} · {r.tokens_per_second:,.0f} tok/s"
        + (f" · resumed from {Path(r.resumed_from).name}" if r.resumed_from else "")
        + f" → {output}"
    )


@app.command("evaluate")
@_guard
@option_groups
def evaluate_cmd(
    input: DataArg,
    model: ModelOpt = EMBEDDED,
    template: Annotated[str, typer.Option(help="alpaca, chat, none, or a JSON template file.")] = "alpaca",
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence.")] = 512,
    no_eos: Annotated[bool, typer.Option("--no-eos", help="Do not score an EOS after each answer.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result as JSON.")] = None,
    overwrite: OverwriteOpt = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    batch_tokens: BatchOpt = None,
    *,
    run: ModelRun,
) -> None:
    """Mean answer loss of a model on held-out DATA (InstructMining's quality proxy); prints JSON."""
    import json

    from ..atomic import write_text
    from ..models import use_cache_root
    from ..train.evaluate import evaluate

    _check_paths([input, *_model_input(model)], [(output, "json", "--output")], overwrite)
    dataset = _read(input, run.reading, run.hub)
    with use_cache_root(run.cache_dir):
        r = evaluate(
            dataset, model, template=template, max_length=max_length, eos=not no_eos, dtype=dtype, device=device,
            batch_tokens=batch_tokens, trust_remote_code=run.trust_remote_code, progress=not run.quiet,
        )  # fmt: skip
    text = json.dumps(r.as_dict(), indent=2)
    if output:
        write_text(output, text + "\n")
    print(text)
    _say(f"loss {r.loss:.4f} · ppl {r.ppl:.3f} · {r.scored} of {r.examples} examples · {r.tokens:,} answer tokens")


@app.command("train-scar")
@_guard
def train_scar_cmd(
    quads: Annotated[
        Path,
        typer.Argument(metavar="QUADS", help="JSON Lines: instruction, input?, human, referenced?, direct, *_score?."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the ranker.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a ranker folder written here before.")
    ] = False,
    encoder: Annotated[
        str, typer.Option(help="embedded (all-MiniLM-L6-v2), mpnet (all-mpnet-base-v2), a folder or hub id.")
    ] = EMBEDDED,
    epochs: Annotated[int, typer.Option(help="Passes over the training split (the reference: 10).")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Quads per step.")] = 4,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = 2e-5,
    linear_dim: Annotated[int, typer.Option("--linear-dim", help="Width of the two MLPs' hidden layer.")] = 1024,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per instruction and per answer.")] = 512,
    quality_min: Annotated[
        float, typer.Option("--quality-min", help="A pair counts when both quality scores are above this.")
    ] = 5.0,
    quality_max: Annotated[float, typer.Option("--quality-max", help="... and below this.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Split, initialisation and shuffling seed.")] = 42,
    device: DeviceOpt = "auto",
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a SCAR style-consistency ranker on QUADS (80/10/10 split, best epoch by validation accuracy). Rerun to resume."""
    from ..models import use_cache_root
    from ..train.scar import ScarTrainConfig, read_quads, train_scar

    config = ScarTrainConfig(
        encoder=encoder, epochs=epochs, batch_size=batch_size, learning_rate=lr, linear_dim=linear_dim,
        max_length=max_length, quality_min=quality_min, quality_max=quality_max, seed=seed, device=device,
    )  # fmt: skip
    _check_paths([quads], [(output, "model", "--output")], overwrite)
    rows = read_quads(quads)
    log = (lambda m: None) if quiet else (lambda m: _say(m, "dim"))
    try:
        with use_cache_root(cache_dir):
            r = train_scar(rows, output, config, progress=not quiet, log=log)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume from the last checkpoint")
    _say(
        f"trained on {r['rows']['train']} quads · best validation accuracy {r['best_validation']:.4f} · "
        f"test accuracy {r['test']['all']:.4f} → {output}"
    )


@app.command("synthesize")
@_guard
def synthesize_cmd(
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="QUADS.jsonl: the rows with the LLM answers added.")],
    kind: Annotated[
        str, typer.Option(help="direct (the LLM answers), referenced (it rewrites the human answer), or both.")
    ] = "both",
    model: Annotated[
        str,
        typer.Option(help="The LLM: a model name on --url's server, else a local model (embedded, hub id, folder)."),
    ] = EMBEDDED,
    url: Annotated[str | None, typer.Option(help="An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Environment variable holding the server's API key.")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="New tokens per answer.")] = 1024,
    concurrency: Annotated[int, typer.Option(help="Server: requests at a time.")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Local model: prompts per generate call.")] = 8,
    device: DeviceOpt = "auto",
    overwrite: OverwriteOpt = False,
    on_error: OnErrorOpt = OnError.fail,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Add SCAR's LLM answers (direct, referenced) to DATA's rows, as a quads file for train-scar. Cached; rerun to resume."""
    import json

    from ..atomic import write_text
    from ..data.errors import OptionError
    from ..models import use_cache_root
    from ..train.synthesize import KINDS, Generator, read_rows, synthesize

    if kind not in (*KINDS, "both"):
        raise OptionError(f"--kind {kind!r}: expected direct, referenced or both")
    kinds = list(KINDS) if kind == "both" else [kind]
    _check_paths([input], [(output, "rejects", "--output")], overwrite)
    rows = read_rows(input, on_error.value)
    gen = Generator(model=model, url=url, key_env=key_env, max_tokens=max_tokens, concurrency=concurrency,
                    batch_size=batch_size, device=device)  # fmt: skip
    log = (lambda m: None) if quiet else (lambda m: _say(m, "dim"))
    with use_cache_root(cache_dir):
        out, failed = synthesize(rows, kinds, gen, progress=not quiet, log=log)
    write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    if failed:
        _warn(f"{failed} answers could not be generated (reasons above); rerun to ask for them again")
    _say(f"{len(out)} rows, {', '.join(kinds)} answers → {output}")
