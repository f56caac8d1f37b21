"""`instructsift mine`: the whole InstructMining run on an experiment design, through the experiment runner.

    design = train/design.py's folder (design.json names pool.json, eval.json and the subsets)
    runner = ExperimentRunner(pool, eval, base, FinetuneConfig(...))    # fine-tune on positions, eval loss
    mine(design, runner.loss, out, ...)                                  # indicators, rule, search, sweep

The output folder holds `settings.json` (what decides every number in it: the design's hash, the runner's
settings and base model fingerprint, the indicators and their options, the size bounds); a rerun with the
same settings resumes (the runner caches every fine-tuning, the search journals every trial), one with
other settings is refused, so that a journal of losses under other settings is never mixed in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ..data.errors import MissingFileError, OptionError, OutputError, literal
from ..models.embedded import EMBEDDED
from ..registry import StrictModel
from ..train.finetune import FinetuneConfig

SETTINGS = "settings.json"
WRITES = ("settings.json", "pool.scores.parquet", "experiments.json", "rule.json", "search.jsonl", "curve.png",
          "summary.json")  # fmt: skip


class MineSettings(StrictModel):
    """`instructsift mine`'s settings: the base model and its fine-tuning, the indicators and the options of
    their scorers (InstructMining's), and the subset-size search. The command's options are generated from
    these fields (each flag the field's name in dashes: --reward-model, --full-finetune, --min-k), their help
    from the descriptions; `arguments()` gives them to `mine_design`."""

    base: str = Field(EMBEDDED, description="The base model fine-tuned on every subset (as --model)")
    model: str = Field(EMBEDDED, description="The model that scores the ppl and token-length indicators")
    reward_model: str | None = Field(
        None,
        description="instructmining: a reward model (hub id or folder), or standin:PREFERENCE_FILE (offline stand-in)",
    )
    reward_format: str | None = Field(None, description="instructmining: how the reward model reads a pair [pair]")
    encoder: str | None = Field(
        None, description="knn indicators: embedded (all-MiniLM-L6-v2), a folder or hub id [embedded]"
    )
    unieval: str | None = Field(
        None,
        description="instructmining: a UniEval evaluator (MingZhong/unieval-dialog or another T5 Boolean-QA "
        "checkpoint: hub id or folder; not installable offline) for the naturalness, coherence and "
        "understandability columns",
    )
    indicators: str | None = Field(
        None,
        description="Indicators, comma-separated [output_tokens,input_tokens,mtld,ppl,knn6, + reward or "
        "reward_standin with --reward-model, + naturalness,coherence,understandability with --unieval]",
    )
    epochs: float = Field(1.0, description="Fine-tuning passes over each subset")
    lr: float | None = Field(None, description="Peak learning rate [LoRA 2e-4]")
    batch_size: int = Field(8, description="Sequences per step")
    max_length: int = Field(512, description="Tokens per sequence (fine-tuning, evaluation and the ppl scorer)")
    seed: int = Field(42, description="Fine-tuning seed")
    full_finetune: bool = Field(False, description="Tune every weight instead of a LoRA adapter")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    min_k: int = Field(10, description="Smallest subset size the search tries")
    max_k: int | None = Field(None, description="Largest subset size the search tries [the pool]")
    trials: int = Field(20, description="BlendSearch trials (distinct sizes) over k")
    sweep: int = Field(8, description="Evenly log-spaced sizes for the curve")

    def config(self) -> FinetuneConfig:
        """The fine-tuning of every subset."""
        return FinetuneConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, max_length=self.max_length,
                              seed=self.seed, lora=not self.full_finetune, device=self.device)  # fmt: skip

    def scorer_options(self) -> dict[str, Any]:
        """The indicator scorers' options (InstructMining's `Params`): those given, and always the model and
        max length (the device only when not `auto`)."""
        given = {"reward_model": self.reward_model, "reward_format": self.reward_format, "encoder": self.encoder,
                 "unieval": self.unieval, "device": None if self.device == "auto" else self.device}  # fmt: skip
        return {"model": self.model, "max_length": self.max_length} | {k: v for k, v in given.items() if v is not None}

    def arguments(self) -> dict[str, Any]:
        """`mine_design`'s keyword arguments of these settings."""
        names = [n.strip() for n in self.indicators.split(",") if n.strip()] if self.indicators else None
        return dict(base=self.base, config=self.config(), indicators=names, options=self.scorer_options(),
                    low=self.min_k, high=self.max_k, trials=self.trials, sweep_points=self.sweep)  # fmt: skip


def design_file(path: str | Path) -> Path:
    """design.json itself, or the design.json in a folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "design.json"
    if not p.is_file():
        raise MissingFileError(
            f"{p}: no such design file (make one with `instructsift design SOURCE... --eval-source NAME -o FOLDER`)"
        )
    return p


def read_design(path: Path) -> dict[str, Any]:
    """The design JSON, checked: pool and eval files next to it, subsets of integer rows."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise OptionError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise OptionError(f"{path}: a design is an object with pool, eval and subsets")
    for key in ("pool", "eval"):
        if not isinstance(spec.get(key), str):
            raise OptionError(f"{path}: field {key!r} must name a data file (relative to the design's folder)")
        if not (path.parent / spec[key]).exists():
            raise OptionError(f"{path}: field {key!r}: {path.parent / spec[key]} does not exist")
    subsets = spec.get("subsets")
    if not isinstance(subsets, list) or not subsets:
        raise OptionError(f"{path}: field 'subsets' must be a non-empty list of {{'rows': [...]}}")
    for i, s in enumerate(subsets):
        rows = s.get("rows") if isinstance(s, dict) else None
        if (
            not isinstance(rows, list)
            or not rows
            or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows)
        ):
            raise OptionError(f"{path}: subsets[{i}].rows must be a non-empty list of pool positions (integers)")
    return spec


def check_held_out(pool: Any, held: Any) -> None:
    """Refuse a design whose held-out instructions (normalised: case and white space) are in the pool: a
    loss measured on instructions the model was tuned on is not held out."""
    from .design import normalise

    held_at: dict[str, int] = {}
    for ex in held.examples:
        held_at.setdefault(normalise(ex.instruction), ex.row)
    pairs = [(ex.row, held_at[key]) for ex in pool.examples if (key := normalise(ex.instruction)) in held_at]
    if pairs:
        shown = ", ".join(f"pool row {p} = eval row {e}" for p, e in pairs[:10]) + (", ..." if len(pairs) > 10 else "")
        raise OptionError(
            f"{pool.path}: {len(pairs)} pool rows have the instruction of a held-out row of {held.path} (rows count "
            f"from 0; case and white space ignored): {shown}; remove them from the pool (`instructsift design` does)"
        )


def check_output(out: Path, stamp: dict[str, Any]) -> None:
    """`out` is new, empty, or a folder of an earlier `mine` run with the same settings (an error names it as
    `mine_design`'s `out=`)."""
    if out.exists() and not out.is_dir():
        raise OutputError("{out}: is a file, but this output is a folder", out=str(out))
    if not out.is_dir() or not any(out.iterdir()):
        return
    f = out / SETTINGS
    if not f.is_file():
        why = f"a folder of other files (no {SETTINGS}); give a new or empty folder"
        raise OutputError("{out}: " + literal(why), out=str(out))
    try:
        old = json.loads(f.read_text(encoding="utf-8"))
    except ValueError:
        raise OutputError(f"{f}: not valid JSON; give a new folder") from None
    if old != stamp:
        changed = sorted(k for k in {*old, *stamp} if old.get(k) != stamp.get(k))
        why = f"written by a mine run with other settings ({', '.join(changed)}); give a new folder"
        raise OutputError(
            "{out}: " + literal(why) + " (the fine-tunings stay cached), or delete this one", out=str(out)
        )


def mine_design(
    design: str | Path,
    out: str | Path,
    *,
    base: str = EMBEDDED,
    config: FinetuneConfig | None = None,
    indicators: Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
    low: int = 10,
    high: int | None = None,
    trials: int = 20,
    sweep_points: int = 8,
    eval_batch_tokens: int | None = None,
    eval_dtype: str = "auto",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run `experiments.mining.mine` on `design` with an ExperimentRunner as its loss; returns summary.json's
    content (the rule, the search, best k, and how many fine-tunings ran now)."""
    from ..api import read
    from ..atomic import write_text
    from ..methods.instructmining import Params, indicators_for, unused
    from ..models import use_cache_root
    from .mining import mine
    from .runner import ExperimentRunner

    log = log or print
    t_start = time.monotonic()
    path = design_file(design)
    spec = read_design(path)
    params = Params.model_validate(options or {})
    names = list(indicators) if indicators else indicators_for(params)
    try:
        unused(names, params)
    except ValueError as e:
        raise OptionError(str(e)) from None
    config = config or FinetuneConfig()
    with use_cache_root(cache_dir):
        pool = read(path.parent / spec["pool"])
        held = read(path.parent / spec["eval"])
    if pool.rejects:
        raise OptionError(
            f"{pool.path}: {len(pool.rejects)} rows could not be read; the design's positions need every row"
        )
    n = len(pool.examples)
    for i, s in enumerate(spec["subsets"]):
        bad = [r for r in s["rows"] if not 0 <= r < n]
        if bad:
            raise OptionError(f"{path}: subsets[{i}].rows: position {bad[0]} is outside the pool (0..{n - 1})")
    check_held_out(pool, held)
    runner = ExperimentRunner(pool, held, base, config, eval_batch_tokens=eval_batch_tokens, eval_dtype=eval_dtype,
                              cache_dir=cache_dir, progress=progress, log=log)  # fmt: skip
    high = min(high or n, n)
    if not 1 <= low < high:
        raise OptionError(
            f"the subset sizes need {{low}} below {{high}}, both from 1 to {n} (the pool)", low=low, high=high
        )
    target = Path(out)
    stamp = {
        "design": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
        "pool": n,
        "base": base,
        "base_fingerprint": runner.source.fingerprint,
        "runner": runner.settings(),
        "indicators": names,
        "options": params.model_dump(exclude_defaults=True),
        "min_k": low,
        "max_k": high,
    }
    check_output(target, stamp)
    target.mkdir(parents=True, exist_ok=True)
    write_text(target / SETTINGS, json.dumps(stamp, indent=2) + "\n")
    log(f"design {path}: {len(spec['subsets'])} subsets of a pool of {n}, {len(held.examples)} held-out rows; "
        f"base {base}; indicators {', '.join(names)}")  # fmt: skip

    counts = {"trained": 0, "cached": 0}

    def loss_of(rows: Sequence[int]) -> float:
        done = runner.cached(rows)
        if done is not None:
            counts["cached"] += 1
            return done.eval_loss
        log(f"fine-tuning {base} on {len(rows)} rows ...")
        t0 = time.monotonic()
        loss = runner.loss(rows)
        counts["trained"] += 1
        log(f"fine-tuned on {len(rows)} rows: eval loss {loss:.4f} ({time.monotonic() - t0:.0f}s; "
            f"{counts['trained']} trained this run, {time.monotonic() - t_start:.0f}s elapsed)")  # fmt: skip
        return loss

    summary = mine(path, loss_of, target, indicators=names, options=params.model_dump(exclude_defaults=True),
                   low=low, high=high, budget=trials, sweep_points=sweep_points, cache_dir=cache_dir,
                   log=log)  # fmt: skip
    summary.update(
        design=str(path),
        base=base,
        finetune=runner.settings()["finetune"],
        trained_now=counts["trained"],
        cached_now=counts["cached"],
        seconds=time.monotonic() - t_start,
        curve=str(target / "curve.png"),
    )
    write_text(target / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The rule's table (coefficient, standard error, p-value per indicator), fit and search figures."""
    rule = summary["rule"]
    lines = [f"{'':16} {'coef':>12} {'std err':>10} {'p':>8}"]
    terms = [("const", rule["intercept"])] + list(rule["coef"].items())
    for name, coef in terms:
        se, p = (rule.get("bse") or {}).get(name), (rule.get("pvalues") or {}).get(name)
        lines.append(f"{name:16} {coef:12.4g} {_g(se):>10} {_g(p):>8}")
    for name, why in (rule.get("dropped") or {}).items():
        lines.append(f"{name:16} dropped: {why}")
    missing = rule.get("missing") or {}
    if missing:
        totals: dict[str, int] = {}
        for counts in missing.values():
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
        lines.append(f"rows without a value, left out of their subset's mean ({len(missing)} subsets): "
                     + ", ".join(f"{name} {n}" for name, n in totals.items()))  # fmt: skip
    lines.append(
        f"R² {_g(rule.get('rsquared'))}, leave-one-out R² {_g(rule.get('loo_rsquared'))} on {rule.get('n_subsets')} "
        f"subsets; best k {summary['best_k']} of {summary['pool']} ranked rows (eval loss {summary['best_loss']:.4f}); "
        f"{summary['trained_now']} fine-tunings now, {summary['cached_now']} cached; curve {summary['curve']}"
    )
    return lines


def _g(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


__all__ = ["MineSettings", "check_held_out", "design_file", "mine_design", "read_design", "report_lines"]
