"""The subset-size search of InstructMining: BlendSearch over k, each trial the eval loss of the top k.

Cao et al., 2023 (arXiv:2307.06290) saw double descent in eval loss against the number of selected
examples and picked the size with FLAML's BlendSearch (2,532 of 100,000). Here a trial is
`loss_of(order[:k])`: `order` is the pool ranked by the rule (best first) and `loss_of` a runner that
fine-tunes on those rows and evaluates (`experiments/runner.py`; `instructsift mine` wires it in). k is searched on a log
scale between `low` and `high` (`flaml.tune.lograndint`) for `budget` trials.

Every evaluated k goes to a journal (JSON Lines, each line flushed and fsync'd as it completes), so an
interrupted search resumes: a rerun reads the journal, hands its trials to BlendSearch as already
evaluated (`points_to_evaluate` with `evaluated_rewards`) and calls `loss_of` only for new k. The
journal's first line records a hash of `order`; a journal of another ranking is refused. `sweep`
evaluates an even log-spaced grid into the same journal (the curve), and `plot_curve` draws both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.errors import OptionError
from ..errors import require

KIND = "instructmining-size-search/1"


@dataclass
class Trial:
    k: int
    loss: float
    how: str  # "search" or "sweep"


@dataclass
class SearchResult:
    best_k: int
    best_loss: float
    trials: list[Trial] = field(default_factory=list)  # every journaled trial, in order
    calls: int = 0  # how many times loss_of ran in this call


def order_hash(order: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps([int(i) for i in order]).encode()).hexdigest()[:16]


class Journal:
    """The trials of one ranking, one JSON line each (the first line names the ranking)."""

    def __init__(self, path: str | os.PathLike, order: Sequence[int]):
        self.path = Path(path)
        self.header = {"kind": KIND, "order": order_hash(order), "n": len(order)}
        self.trials: list[Trial] = []
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            head = json.loads(lines[0]) if lines else None
        except ValueError:
            head = None
        if head != self.header:
            raise OptionError(
                f"{self.path}: a journal of another search (its first line is {lines[0][:120] if lines else 'empty'!r});"
                " give a new journal path"
            )
        for n, line in enumerate(lines[1:], start=2):
            try:
                d = json.loads(line)
                self.trials.append(Trial(int(d["k"]), float(d["loss"]), str(d["how"])))
            except (ValueError, KeyError, TypeError):
                if n == len(lines):  # a line cut short by a kill: that trial runs again
                    continue
                raise OptionError(f"{self.path}, line {n}: not a trial ({line[:80]!r})") from None

    def losses(self) -> dict[int, float]:
        return {t.k: t.loss for t in self.trials}

    def add(self, trial: Trial) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", encoding="utf-8") as f:
            if fresh:
                f.write(json.dumps(self.header) + "\n")
            f.write(json.dumps({"k": trial.k, "loss": trial.loss, "how": trial.how}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.trials.append(trial)


def _evaluate(k: int, order: Sequence[int], loss_of: Callable[[Sequence[int]], float]) -> float:
    loss = float(loss_of(list(order[:k])))
    if not math.isfinite(loss):
        raise ValueError(f"loss_of gave {loss} for k = {k}")
    return loss


def search_size(
    loss_of: Callable[[Sequence[int]], float],
    order: Sequence[int],
    *,
    low: int,
    high: int,
    budget: int = 20,
    journal: str | os.PathLike,
    seed: int = 20,
    log: Callable[[str], None] | None = None,
) -> SearchResult:
    """The k in [low, high] with the lowest `loss_of(order[:k])` that BlendSearch finds in `budget` trials
    (trials already in `journal` count, so a rerun resumes)."""
    optuna = require("optuna", "the subset-size search (BlendSearch)", extra="mining")
    with warnings.catch_warnings():  # "flaml.automl is not available": not needed here
        warnings.simplefilter("ignore")
        flaml = require("flaml", "the subset-size search (BlendSearch)", extra="mining")
    BlendSearch, tune = flaml.BlendSearch, flaml.tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # BlendSearch's global search announces each study

    high = min(high, len(order))
    if not 1 <= low < high:
        raise OptionError(f"the size bounds need 1 <= low < high <= {len(order)} (the ranked rows), got {low}, {high}")
    if budget < 1:
        raise OptionError(f"budget must be at least 1, got {budget}")
    log = log or (lambda _m: None)
    j = Journal(journal, order)
    cached = j.losses()
    done = [t for t in j.trials if t.how == "search"]
    seen = {t.k for t in done}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        searcher = BlendSearch(
            metric="loss",
            mode="min",
            space={"k": tune.lograndint(low, high + 1)},
            low_cost_partial_config={"k": low},
            points_to_evaluate=[{"k": t.k} for t in done] or None,
            evaluated_rewards=[t.loss for t in done] or None,
            seed=seed,
        )
    calls, attempts = 0, 0
    while len(seen) < budget and attempts < 50 * budget:
        tid = f"trial-{attempts}"
        attempts += 1
        config = searcher.suggest(tid)
        if config is None:  # BlendSearch skips a turn now and then (between its local and global searches)
            continue
        k = min(high, max(low, int(config["k"])))
        if k in cached:
            loss = cached[k]
        else:
            loss = _evaluate(k, order, loss_of)
            calls += 1
            cached[k] = loss
        if k not in seen:
            seen.add(k)
            if not any(t.k == k and t.how == "search" for t in j.trials):
                j.add(Trial(k, loss, "search"))
            log(f"trial {len(seen)}/{budget}: k = {k}, loss {loss:.4f}")
        searcher.on_trial_complete(tid, {"loss": loss, "config": config, "time_total_s": 1.0})
    best = min((t for t in j.trials if low <= t.k <= high), key=lambda t: (t.loss, t.k))
    return SearchResult(best.k, best.loss, list(j.trials), calls)


def even_ks(low: int, high: int, n: int) -> list[int]:
    """`n` sizes evenly spaced on a log scale from low to high (distinct integers)."""
    if n < 2:
        return [low]
    return sorted({round(math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (n - 1))) for i in range(n)})


def sweep(
    loss_of: Callable[[Sequence[int]], float],
    order: Sequence[int],
    ks: Sequence[int],
    *,
    journal: str | os.PathLike,
    log: Callable[[str], None] | None = None,
) -> list[Trial]:
    """The loss at each k of `ks` (the curve), journaled beside the search's trials (shared, so a k the
    search tried is not run again)."""
    j = Journal(journal, order)
    cached = j.losses()
    out = []
    for k in ks:
        if not 1 <= k <= len(order):
            raise OptionError(f"k = {k} is outside 1..{len(order)}")
        if k not in cached:
            cached[k] = _evaluate(k, order, loss_of)
            if log:
                log(f"sweep: k = {k}, loss {cached[k]:.4f}")
        if not any(t.k == k and t.how == "sweep" for t in j.trials):
            j.add(Trial(k, cached[k], "sweep"))
        out.append(Trial(k, cached[k], "sweep"))
    return out


def plot_curve(trials: Sequence[Trial], path: str | os.PathLike, *, best_k: int | None = None, title: str = "") -> Path:
    """Eval loss against k (log scale): the sweep as a line, search trials as points, the best k marked.
    Written atomically as a PNG (needs matplotlib: the `plot` extra)."""
    matplotlib = require("matplotlib", "the plot of the subset-size search", extra="plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from ..atomic import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    sw = sorted({t.k: t.loss for t in trials if t.how == "sweep"}.items())
    if sw:
        ax.plot([k for k, _ in sw], [v for _, v in sw], "-o", color="#4c72b0", ms=4, label="even sweep")
    se = [t for t in trials if t.how == "search"]
    if se:
        ax.scatter([t.k for t in se], [t.loss for t in se], color="#dd8452", s=22, zorder=3, label="BlendSearch trials")
    if best_k is not None:
        ax.axvline(best_k, color="#55a868", ls="--", lw=1, label=f"best k = {best_k}")
    ax.set_xscale("log")
    ticks = [k for k, _ in sw] or sorted({t.k for t in trials})
    ax.set_xticks(ticks, [str(k) for k in ticks])  # the k run, not 2 × 10¹ labels that overlap on a short axis
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("selected examples k (top k by the rule)")
    ax.set_ylabel("eval loss")
    ax.set_title(title or "InstructMining: eval loss against subset size")
    ax.legend(frameon=False)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def as_dict(result: SearchResult) -> dict[str, Any]:
    return {"best_k": result.best_k, "best_loss": result.best_loss,
            "trials": [t.__dict__ for t in result.trials]}  # fmt: skip


__all__ = ["Journal", "SearchResult", "Trial", "even_ks", "plot_curve", "search_size", "sweep"]
