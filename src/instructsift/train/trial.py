"""A trial: fine-tune a base model on a subset of a data set and evaluate the tuned model's answer loss on a
held-out set, cached. `TrialRunner` holds what every trial of one comparison shares (data, held-out set,
base model, settings); `experiments.runner.ExperimentRunner` runs many of them.

A trial is (subset, base model, settings) -> the tuned model's eval loss. Every trial is cached under
`<cache>/experiments/<key>/trial.json`, keyed by the subset's example content hashes (in data order), the
base model's fingerprint, every fine-tuning setting that changes the weights, and the held-out set's
content and evaluation settings. A run that was killed resumes: finished trials are read back, the
interrupted one resumes from its last fine-tuning checkpoint (`train.finetune`), and a new subset adds one
trial. The name of a subset is not part of the key: two names for one subset are one trial.

`trials_dir` is a second home for finished trials, `<trials_dir>/<key>.json`, shared between machines (a
folder kept in git, a network disk): a trial found there is read back like a cached one, and every trial
this runner finishes is written there too. A comparison spread over machines that do not share a cache (a
cluster's preemptible nodes, fresh CI machines) thus resumes with the trials any of them finished.

    runner = TrialRunner(data, held_out, base="gemma3-270m", config=FinetuneConfig(epochs=1))
    trial = runner.trial("superfiltering", rows_a)        # -> Trial (eval_loss, tokens, seconds, ...)

The `trial` fit step runs one trial inside a recipe (the rows its `on:` selectors keep) and names the trial's
JSON. It runs a fine-tuning and an evaluation, no pipeline, so it sits here with the other fit steps, below
the recipes that name it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import create_model

from ..data.errors import OptionError
from ..models.embedded import EMBEDDED
from ..registry import DataRef, register
from .finetune import FinetuneConfig
from .fit import NOT_IN_KEY, FinetuneParams, artifact_key

TRIAL_FILE = "trial.json"
KEY_VERSION = 1  # bump when a change makes cached trials incomparable


@dataclass
class Trial:
    """One fine-tune + evaluation. `tokens`: training tokens per epoch (no padding); `seconds`: fine-tuning
    plus evaluation as measured when the trial ran (a cached trial keeps them); `cached`: read back."""

    name: str
    n: int
    tokens: int
    target_tokens: int
    eval_loss: float
    eval_ppl: float
    eval_example_loss: float
    eval_tokens: int
    train_loss: float | None
    steps: int
    finetune_seconds: float
    eval_seconds: float
    key: str
    skipped: int = 0  # training examples with no answer token left
    eval_losses: list[float | None] | None = None  # each held-out example's mean answer loss (None: skipped)
    eval_counts: list[int] | None = None  # each held-out example's answer tokens (trials from before 0.2 lack both)
    more_evals: list[dict[str, Any]] = field(default_factory=list)  # the other held-out sets, in order given
    cached: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.finetune_seconds + self.eval_seconds

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **override: Any) -> Trial:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in {**data, **override}.items() if k in names})


def _digest(hashes: Sequence[str]) -> str:
    h = hashlib.sha256()
    for x in hashes:
        h.update(x.encode())
    return h.hexdigest()[:16]


class TrialRunner:
    """Fine-tunes `base` with `config` on subsets of `data` (positions into its examples) and evaluates
    each on `eval_data`; see the module docstring. `eval_batch_tokens` and `eval_dtype` go to `evaluate`
    (the template, max length and EOS are the fine-tuning's). `keep_models` keeps each tuned model beside
    its trial (else it is deleted once evaluated; a new held-out set then fine-tunes again). `on_model(key,
    folder)` sees each tuned model a trial makes, after its trial is saved and before the model is deleted
    (`compare` generates the held-out answers there); `tuned_model` gives a finished trial's model back.
    `trials_dir`: finished trials shared between machines (see the module docstring)."""

    def __init__(
        self,
        data: Any,
        eval_data: Any,
        base: str = EMBEDDED,
        config: FinetuneConfig | None = None,
        *,
        eval_batch_tokens: int | None = None,
        eval_dtype: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        keep_models: bool = False,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        callbacks: Sequence[Any] = (),
        on_model: Callable[[str, Path], None] | None = None,
        more_evals: Sequence[Any] = (),
        trials_dir: str | os.PathLike | None = None,
    ):
        from ..models import cache_root, resolve, use_cache_root

        self.examples = list(getattr(data, "examples", data))
        self.eval_examples = list(getattr(eval_data, "examples", eval_data))
        if not self.eval_examples:
            raise OptionError("the held-out set has no examples to evaluate on")
        self.base = base
        self.config = config or FinetuneConfig()
        self.eval_batch_tokens = eval_batch_tokens
        self.eval_dtype = eval_dtype
        self.cache_dir = Path(cache_dir) if cache_dir else None
        with use_cache_root(self.cache_dir):
            self.root = cache_root() / "experiments"
            self.source = resolve(base)
        self.trials_dir = Path(trials_dir) if trials_dir else None
        self.keep_models = keep_models
        self.progress = progress
        self.log = log or (lambda _m: None)
        self.callbacks = list(callbacks)
        self.on_model = on_model
        self.trained: list[str] = []  # keys of the trials fine-tuned by this runner (not read from the cache)
        self._eval_digest = _digest([ex.content_hash for ex in self.eval_examples])
        self.more_evals = [list(getattr(d, "examples", d)) for d in more_evals]  # more held-out sets, each evaluated
        if any(not examples for examples in self.more_evals):
            raise OptionError("a held-out set has no examples to evaluate on")

    # -- keys ----------------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Everything but the subset that decides a trial's result (and its key)."""
        ft = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in NOT_IN_KEY}
        out = {
            "version": KEY_VERSION,
            "finetune": ft,
            "eval": {"examples": self._eval_digest, "n": len(self.eval_examples), "dtype": self.eval_dtype},
        }
        if self.more_evals:  # absent with one held-out set, so that its trials keep their keys
            out["more_evals"] = [_digest([ex.content_hash for ex in examples]) for examples in self.more_evals]
        return out

    def positions(self, subset: Sequence[int]) -> list[int]:
        """The subset as sorted, checked positions: a set of rows decides the trial, not their order."""
        n = len(self.examples)
        out = sorted(int(i) for i in subset)
        if not out:
            raise OptionError("a subset to fine-tune on is empty")
        if out[0] < 0 or out[-1] >= n:
            bad = out[0] if out[0] < 0 else out[-1]
            raise OptionError(f"subset position {bad} is outside the data set (0..{n - 1})")
        if len(set(out)) != len(out):
            raise OptionError("a subset names one row more than once")
        return out

    def key(self, subset: Sequence[int]) -> str:
        hashes = [self.examples[i].content_hash for i in self.positions(subset)]
        return artifact_key("trial", hashes, self.source.fingerprint, self.settings())

    def folder(self, subset: Sequence[int]) -> Path:
        return self.root / self.key(subset)

    def cached(self, subset: Sequence[int], name: str = "") -> Trial | None:
        """The finished trial of `subset` (from the cache, else from `trials_dir`), or None."""
        key = self.key(subset)
        for f in (self.root / key / TRIAL_FILE, *([self.trials_dir / f"{key}.json"] if self.trials_dir else [])):
            if f.is_file():
                return Trial.from_dict(json.loads(f.read_text()), name=name, cached=True)
        return None

    # -- running -------------------------------------------------------------------------------------------
    def trial(self, name: str, subset: Sequence[int]) -> Trial:
        """Fine-tune on `subset` and evaluate, or read the finished trial back."""
        from ..atomic import write_text
        from ..models import use_cache_root
        from .evaluate import evaluate
        from .finetune import finetune

        rows = self.positions(subset)
        done = self.cached(rows, name)
        if done is not None:
            return done
        folder = self.folder(rows)
        key = folder.name
        model_dir = folder / "model"
        train_file = folder / "finetune.json"
        with use_cache_root(self.cache_dir):
            if (model_dir / "config.json").is_file() and train_file.is_file():
                ft = json.loads(train_file.read_text())  # killed during evaluation: the model is there
            else:
                r = finetune(
                    [self.examples[i] for i in rows],
                    self.base,
                    model_dir,
                    self.config,
                    progress=self.progress,
                    callbacks=self.callbacks,
                )
                ft = {
                    "tokens": r.tokens,
                    "target_tokens": r.target_tokens,
                    "train_loss": r.train_loss,
                    "steps": r.steps,
                    "seconds": r.seconds,
                    "skipped": len(r.skipped),
                    "device": r.info.get("device"),
                    "mixed_precision": r.info.get("mixed_precision"),
                }
                write_text(train_file, json.dumps(ft, indent=2))
                self.trained.append(key)
            ev, *more = [
                evaluate(
                    examples,
                    str(model_dir),
                    template=self.config.template,
                    max_length=self.config.max_length,
                    eos=self.config.eos,
                    dtype=self.eval_dtype,
                    device=self.config.device,
                    batch_tokens=self.eval_batch_tokens,
                    trust_remote_code=self.config.trust_remote_code,
                    progress=self.progress,
                )
                for examples in [self.eval_examples, *self.more_evals]
            ]
        trial = Trial(
            name=name,
            n=len(rows),
            tokens=ft["tokens"],
            target_tokens=ft["target_tokens"],
            eval_loss=ev.loss,
            eval_ppl=ev.ppl,
            eval_example_loss=ev.example_loss,
            eval_tokens=ev.tokens,
            train_loss=ft["train_loss"],
            steps=ft["steps"],
            finetune_seconds=ft["seconds"],
            eval_seconds=ev.seconds,
            key=key,
            skipped=ft["skipped"],
            eval_losses=ev.per_example,
            eval_counts=ev.per_example_tokens,
            more_evals=[
                {"loss": e.loss, "tokens": e.tokens, "losses": e.per_example, "counts": e.per_example_tokens}
                for e in more
            ],
            settings={
                **self.settings(),
                "base": self.base,
                "base_fingerprint": self.source.fingerprint,
                "device": ft.get("device"),
                "mixed_precision": ft.get("mixed_precision"),
                "eval_device": ev.settings.get("device"),
                "eval_skipped": len(ev.skipped),
            },
        )
        saved = json.dumps({**trial.as_dict(), "name": None}, indent=2)
        write_text(folder / TRIAL_FILE, saved)
        if self.trials_dir is not None:
            self.trials_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.trials_dir / f"{key}.json", saved)
        if self.on_model is not None:
            self.on_model(key, model_dir)  # if it fails, the model stays for the next run
        if not self.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
        return trial

    @contextmanager
    def tuned_model(self, subset: Sequence[int]) -> Iterator[Path]:
        """The folder of `subset`'s tuned model: the kept one, or fine-tuned again with the same settings
        and seed when it was deleted (deleted again afterwards unless `keep_models`)."""
        from ..models import use_cache_root
        from .finetune import finetune

        rows = self.positions(subset)
        model_dir = self.folder(rows) / "model"
        if not (model_dir / "config.json").is_file():
            self.log(f"fine-tuning again on {len(rows)} rows: the tuned model was deleted after its evaluation")
            with use_cache_root(self.cache_dir):
                finetune([self.examples[i] for i in rows], self.base, model_dir, self.config,
                         progress=self.progress, callbacks=self.callbacks)  # fmt: skip
        yield model_dir
        if not self.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)


TrialParams = create_model(
    "TrialParams",
    __base__=FinetuneParams,
    eval=(DataRef, ...),
    eval_batch_tokens=(int | None, None),
)


@register("fit", "trial", params=TrialParams)
def fit_trial(
    dataset: Any, params: Any, *, cache_dir: Any = None, progress: bool = True, log: Callable | None = None
) -> str:
    """Fine-tune `params.model` on the kept rows and evaluate its answer loss on the held-out set `eval`
    (cached); returns the trial's JSON (eval_loss, tokens, seconds, settings)."""
    from ..data import read

    log = log or (lambda _m: None)
    held_out = read(params.eval)
    config = FinetuneConfig(**params.model_dump(exclude={"model", "eval", "eval_batch_tokens"}))
    runner = TrialRunner(
        dataset,
        held_out,
        params.model,
        config,
        eval_batch_tokens=params.eval_batch_tokens,
        cache_dir=cache_dir,
        progress=progress,
        log=log,
    )
    rows = list(range(len(dataset.examples)))
    trial = runner.trial("trial", rows)
    log(f"trial on {trial.n} rows: eval loss {trial.eval_loss:.4f}" + (" (cached)" if trial.cached else ""))
    return str(runner.folder(rows) / TRIAL_FILE)
