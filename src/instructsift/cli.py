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
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="cherry (alias: ifd), superfiltering, alpagasus or lima.")]
ModelOpt = Annotated[str, typer.Option(help="embedded (SmolLM2-135M-Instruct), a hub id, a folder or a .gguf.")]
TemplateOpt = Annotated[str | None, typer.Option(help="alpaca, chat, none, or a JSON template file [method default].")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
MaxLenOpt = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per sequence [cherry 512, superfiltering 1024].")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch [CPU 8192, GPU 65536].")]
ChunkOpt = Annotated[
    int | None, typer.Option("--chunk-size", help="Examples per cached chunk: a resumed run redoes at most one [CPU 512, GPU 8192].")
]
FormatOpt = Annotated[Fmt | None, typer.Option("--format", help="Record format [detected].")]
OnErrorOpt = Annotated[OnError, typer.Option("--on-error", help="fail on a bad row, or skip it to the rejects file.")]
RejectsOpt = Annotated[Path | None, typer.Option(help="Where skipped rows go [OUTPUT.rejects.jsonl].")]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Score cache [$INSTRUCTSIFT_CACHE or ~/.cache/instructsift].")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the score cache.")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own code to run.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
PerCategoryOpt = Annotated[
    int | None, typer.Option("--per-category", help="lima: keep up to N per category (or cluster), best first.")
]
CategoryFieldOpt = Annotated[
    str | None, typer.Option("--category-field", help="lima: the record field holding the category [category].")
]
ClustersOpt = Annotated[
    int | None, typer.Option("--clusters", help="lima: stratify by K-Means clusters of embeddings instead.")
]
RankByOpt = Annotated[
    str | None,
    typer.Option("--rank-by", help="lima: score column ranking rows, highest first [response_chars; ifd, judge]."),
]
MinCharsOpt = Annotated[int | None, typer.Option("--min-chars", help="lima: shortest answer kept [1200].")]
MaxCharsOpt = Annotated[int | None, typer.Option("--max-chars", help="lima: longest answer kept [4096].")]
RulesOpt = Annotated[
    str | None,
    typer.Option("--rules", help="lima: rules that drop rows, comma-separated, or none [first_person,refers_other,residue,refusal]."),
]
LanguagesOpt = Annotated[str | None, typer.Option("--languages", help="lima: languages kept, comma-separated [en].")]
JudgeUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--judge-url", help="alpagasus: OpenAI-compatible judge server, e.g. http://127.0.0.1:8000/v1 [local model]."
    ),
]
JudgeModelOpt = Annotated[
    str | None,
    typer.Option("--judge-model", help="alpagasus: model name on the judge server (without a URL: a local model)."),
]
JudgeKeyEnvOpt = Annotated[
    str | None,
    typer.Option("--judge-key-env", help="alpagasus: environment variable holding the API key (never printed)."),
]
JudgeDimOpt = Annotated[
    str | None, typer.Option("--judge-dimension", help="alpagasus: accuracy (default) or helpfulness.")
]
JudgePromptOpt = Annotated[
    Path | None,
    typer.Option(
        "--judge-prompt", help="alpagasus: custom prompt file (.json, or text with {instruction} {input} {response})."
    ),
]
JudgeConcOpt = Annotated[
    int | None, typer.Option("--judge-concurrency", help="alpagasus: judge requests in flight at once [8].")
]
ThresholdOpt = Annotated[float | None, typer.Option("--threshold", help="alpagasus: keep judge >= this [4.5].")]


def _judge_opts(url: Any, model: Any, key_env: Any, dimension: Any, prompt: Any, concurrency: Any) -> dict[str, Any]:
    """The judge options as the methods take them (None ones are dropped by the method)."""
    return dict(
        judge_url=url,
        judge_model=model,
        judge_key_env=key_env,
        judge_dimension=dimension,
        judge_prompt=str(prompt) if prompt else None,
        judge_concurrency=concurrency,
    )


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
    _missing_summary(table)
    return table


def _missing_summary(table: Any) -> None:
    """How many rows each scorer with a `<column>_reason` column could not score, and why."""
    from collections import Counter

    for col in table.column_names:
        if not col.endswith("_reason") or col.removesuffix("_reason") not in table.column_names:
            continue
        reasons = Counter(r.split(":")[0] for r in table.column(col).to_pylist() if r)
        n = sum(reasons.values())
        why = "; ".join(f"{k}: {v}" for k, v in reasons.most_common(3)) + ("; ..." if len(reasons) > 3 else "")
        err.print(
            f"{col.removesuffix('_reason')}: {table.num_rows - n} scored, {n} missing" + (f" ({why})" if n else ""),
            highlight=False,
        )


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
    chunk_size: ChunkOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    rejects: RejectsOpt = None,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    trust_remote_code: TrustOpt = False,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
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
        chunk_size=chunk_size,
        trust_remote_code=trust_remote_code,
        **_judge_opts(judge_url, judge_model, judge_key_env, judge_dimension, judge_prompt, judge_concurrency),
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
    chunk_size: ChunkOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    rejects: RejectsOpt = None,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    trust_remote_code: TrustOpt = False,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
    threshold: ThresholdOpt = None,
    per_category: PerCategoryOpt = None,
    category_field: CategoryFieldOpt = None,
    clusters: ClustersOpt = None,
    rank_by: RankByOpt = None,
    min_chars: MinCharsOpt = None,
    max_chars: MaxCharsOpt = None,
    rules: RulesOpt = None,
    languages: LanguagesOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score (or load scores), select with a method's rules, and write the kept records."""
    from .api import read_scores, select, write, write_scores
    from .methods import get_method

    m = get_method(method)
    curation = dict(
        per_category=per_category,
        category_field=category_field,
        clusters=clusters,
        rank_by=rank_by,
        min_chars=min_chars,
        max_chars=max_chars,
        rules=rules,
        languages=languages,
    )
    selectors = m.selectors(ratio=ratio, top=top, threshold=threshold, **curation)
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
        chunk_size=chunk_size,
            trust_remote_code=trust_remote_code,
            **_judge_opts(judge_url, judge_model, judge_key_env, judge_dimension, judge_prompt, judge_concurrency),
            **curation,
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


if __name__ == "__main__":  # python -m instructsift.cli
    app()
