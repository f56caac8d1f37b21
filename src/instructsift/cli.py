"""The `instructsift` command. Thin: every command calls the Python API."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    help="Pick the instruction-tuning examples worth fine-tuning on (IFD / Cherry LLM, Superfiltering, ...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class Fmt(str, Enum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"


Input = Annotated[Path, typer.Argument(help="Data: .json, .jsonl(.gz), .parquet, or a datasets folder.")]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="cherry (alias: ifd) or superfiltering.")]
ModelOpt = Annotated[str, typer.Option(help="embedded (SmolLM2-135M-Instruct), a hub id, a folder or a .gguf.")]
TemplateOpt = Annotated[str | None, typer.Option(help="alpaca, chat, none, or a JSON template file [method default].")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
MaxLenOpt = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per sequence [cherry 512, superfiltering 1024].")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch [CPU 8192, GPU 65536].")]
FormatOpt = Annotated[Fmt | None, typer.Option("--format", help="Record format [detected].")]
OnErrorOpt = Annotated[OnError, typer.Option("--on-error", help="fail on a bad row, or skip it to the rejects file.")]
RejectsOpt = Annotated[Path | None, typer.Option(help="Where skipped rows go [OUTPUT.rejects.jsonl].")]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Score cache [$INSTRUCTSIFT_CACHE or ~/.cache/instructsift].")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the score cache.")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own code to run.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _read(path: Path, fmt: Fmt | None, on_error: OnError) -> Any:
    from .api import read

    return read(path, format=fmt.value if fmt else None, on_error=on_error.value)


def _write_rejects(dataset: Any, output: Path, rejects: Path | None) -> Path | None:
    from .data import write_rejects

    if not dataset.rejects:
        return None
    target = rejects or output.with_name(output.name + ".rejects.jsonl")
    write_rejects(dataset.rejects, target)
    return target


def _score(dataset: Any, method: Any, opts: dict[str, Any], cache_dir: Path | None, no_cache: bool, quiet: bool) -> Any:
    from .api import score

    scorers = method.scorers(**opts)
    for s in scorers:
        err.print(f"[dim]{s.name}: {s.describe()}[/]", highlight=False)
    stats: dict[str, Any] = {}
    table = score(dataset, scorers, cache_dir=cache_dir, use_cache=not no_cache, progress=not quiet, stats=stats)
    for name, st in stats.items():
        err.print(f"[dim]{name}: {st['scored']} scored, {st['cached']} from cache[/]", highlight=False)
    return table


def _guard(fn: Any) -> Any:
    """Turn expected failures (bad input, bad options) into one clear line and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .data.errors import InputError

        try:
            return fn(*args, **kwargs)
        except (InputError, ValueError, FileNotFoundError, KeyError) as e:
            _fail(str(e).strip("'\""))

    return wrapper


@app.command("score")
@_guard
def score_cmd(
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="SCORES.parquet or .jsonl: one row per example.")],
    method: MethodOpt = "cherry",
    model: ModelOpt = "embedded",
    template: TemplateOpt = None,
    dtype: DtypeOpt = "auto",
    max_length: MaxLenOpt = None,
    device: DeviceOpt = "auto",
    batch_tokens: BatchOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    rejects: RejectsOpt = None,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    trust_remote_code: TrustOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score every example; write the score table (row, id, loss_cond, loss_direct, ifd, ifd_ppl, ...)."""
    from .api import write_scores
    from .methods import get_method

    m = get_method(method)
    dataset = _read(input, format, on_error)
    opts = dict(
        model=model,
        template=template,
        dtype=dtype,
        max_length=max_length,
        device=device,
        batch_tokens=batch_tokens,
        trust_remote_code=trust_remote_code,
    )
    table = _score(dataset, m, opts, cache_dir, no_cache, quiet)
    write_scores(table, output)
    rej = _write_rejects(dataset, output, rejects)
    unscored = sum(1 for r in table.column("reason").to_pylist() if r) if "reason" in table.column_names else 0
    line = f"read {dataset.n_read} · scored {table.num_rows - unscored} · unscored {unscored} · rejected {len(dataset.rejects)}"
    err.print(f"{line} → {output}" + (f" (rejects: {rej})" if rej else ""), highlight=False)


@app.command("select")
@_guard
def select_cmd(
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="Selected records, same format as the input.")],
    method: MethodOpt,
    ratio: Annotated[float | None, typer.Option(help="Keep this fraction (see `instructsift methods`).")] = None,
    top: Annotated[int | None, typer.Option(help="Keep this many.")] = None,
    scores: Annotated[Path | None, typer.Option(help="Use this score table instead of scoring.")] = None,
    save_scores: Annotated[Path | None, typer.Option(help="Also write the score table here.")] = None,
    with_scores: Annotated[bool, typer.Option("--with-scores", help="Add the scores to each written record.")] = False,
    model: ModelOpt = "embedded",
    template: TemplateOpt = None,
    dtype: DtypeOpt = "auto",
    max_length: MaxLenOpt = None,
    device: DeviceOpt = "auto",
    batch_tokens: BatchOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    rejects: RejectsOpt = None,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    trust_remote_code: TrustOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score (or load scores), select with a method's rules, and write the kept records."""
    from .api import read_scores, select, write, write_scores
    from .methods import get_method

    m = get_method(method)
    selectors = m.selectors(ratio=ratio, top=top)
    dataset = _read(input, format, on_error)
    if scores is not None:
        table = read_scores(scores, dataset)
    else:
        opts = dict(
            model=model,
            template=template,
            dtype=dtype,
            max_length=max_length,
            device=device,
            batch_tokens=batch_tokens,
            trust_remote_code=trust_remote_code,
        )
        table = _score(dataset, m, opts, cache_dir, no_cache, quiet)
    if save_scores:
        write_scores(table, save_scores)
    picked = select(dataset, table, *selectors)
    write(picked, output, with_scores=with_scores)
    rej = _write_rejects(dataset, output, rejects)
    s = picked.summary()
    why = ", ".join(f"{k}: {v}" for k, v in s["dropped_by"].items())
    err.print(
        f"read {s['read']} · kept {s['kept']} · dropped {s['dropped']}"
        + (f" ({why})" if why else "")
        + f" · rejected {s['rejected']} → {output}"
        + (f" (rejects: {rej})" if rej else ""),
        highlight=False,
    )


@app.command("methods")
def methods_cmd() -> None:
    """List the methods with their papers and defaults."""
    from rich.table import Table

    from .methods import ALIASES, METHODS

    table = Table(title="instructsift methods", show_lines=True)
    for col in ("method", "paper", "what it does", "defaults"):
        table.add_column(col, overflow="fold")
    for m in METHODS.values():
        aliases = [a for a, t in ALIASES.items() if t == m.name]
        name = m.name + (f"\n(alias: {', '.join(aliases)})" if aliases else "")
        defaults = "\n".join(f"{k}: {v!r}" for k, v in m.defaults.items())
        table.add_row(name, m.paper, m.summary, defaults)
    Console().print(table)


def main() -> None:  # pragma: no cover
    sys.exit(app())
