"""InstructMining's rule: log(eval loss) as a linear function of the data's quality indicators.

Cao et al., 2023, "Instruction Mining" (arXiv:2307.06290): fine-tune one base model on many subsets of
known make-up, measure each tuned model's loss on held-out good answers, and fit by least squares

    log L = b0 + sum_j b_j * mean_j(subset)

over the subsets' mean indicator values. The fitted rule then rates single examples (an example is a
subset of one): the predicted log loss, lower is better, and the best ones are kept.

`InstructMiningRule` is the estimator (scikit-learn conventions: settings in `__init__`, `fit` returns
self, learned state in attributes ending in `_`, saved to and loaded from JSON). `paper_rule()` is the
paper's published LLaMA-2-7B rule. The `instructmining` selector applies a rule to the score table.

Indicator names are score-table columns (`reward`, `output_tokens`, `mtld`, ...) or derived ones:
`ppl` = exp(loss_cond) (the IFD scorer's column) and `knnK` (e.g. `knn6`) = mean Euclidean distance of a
row's L2-normalised embedding to its K nearest neighbours among the rows ranked (see `knn_distance`).
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.errors import OptionError
from ..errors import require
from ..registry import ModelRef, register
from .base import Selection, column
from .size import Sized

PAPER_NOTE = (
    "Cao et al. (arXiv:2307.06290), LLaMA-2-7B: log L = 1.0694 - 0.1498 Rew + 8.257e-5 Len - 0.9350 Knn6. "
    "It holds only with the paper's indicators: Rew from OpenAssistant's oasst-rm-2.1-pythia-1.4b reward "
    "model, Knn6 in SentenceBERT embedding space, Len in the paper's tokens; here Rew is the `reward` column, "
    "Len `output_tokens` (the paper names it only 'Len') and Knn6 the mean distance to 6 neighbours. "
    "The paper's Knn6 may be defined differently from ours (ours: the mean Euclidean distance to the 6 nearest "
    "neighbours of L2-normalised all-MiniLM-L6-v2 embeddings, among the rows ranked), so the scale the rule "
    "expects for Knn6, and so its ranking, may differ: a shape, not a calibrated rule."
)
_KNN = re.compile(r"^knn(\d+)$")


def is_knn(name: str) -> bool:
    """Whether an indicator name is a KNN distance, `knnK` (K neighbours)."""
    return _KNN.match(name) is not None


def knn_distance(vectors: np.ndarray, k: int = 6) -> np.ndarray:
    """Mean Euclidean distance from each row to its `k` nearest other rows, after L2-normalising every row
    (so the distance is sqrt(2 - 2 cos)); scikit-learn's NearestNeighbors (a tree or brute force, never a
    Python loop over pairs). A row is never its own neighbour; an identical row is one at distance 0."""
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    X = X / np.where(norms > 0, norms, 1.0)
    if k < 1:
        raise OptionError(f"k must be at least 1, got {k}")
    if len(X) <= k:
        raise OptionError(f"KNN-{k} needs more than {k} rows with embeddings, got {len(X)}")
    dist, _ = NearestNeighbors(n_neighbors=k).fit(X).kneighbors()
    return dist.mean(axis=1)


def indicator_values(table: Any, names: Sequence[str], rows: np.ndarray, embedding: str = "embedding") -> np.ndarray:
    """An (len(rows), len(names)) matrix of indicators for the table rows `rows` (NaN where missing).
    KNN indicators are computed among `rows` (those with an embedding)."""
    out = np.full((len(rows), len(names)), np.nan)
    for j, name in enumerate(names):
        m = _KNN.match(name)
        if m:
            from .vectors import vector_column

            vectors, valid = vector_column(table, embedding)
            ok = valid[rows]
            out[ok, j] = knn_distance(vectors[rows[ok]], int(m.group(1)))
        elif name == "ppl":
            with np.errstate(over="ignore"):
                out[:, j] = np.exp(column(table, "loss_cond")[rows])
        else:
            out[:, j] = column(table, name)[rows]
    return out


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and infinities as None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class InstructMiningRule:
    """Least squares of log(eval loss) on subsets' mean indicator values, with an intercept (statsmodels OLS).

    Indicators that are constant, or a linear combination of the intercept and the indicators before
    them, are dropped before fitting and named in `dropped_` with the reason.

    Fitted attributes: `indicators_` (kept, in order), `intercept_`, `coef_` (name -> coefficient),
    `bse_`, `pvalues_` (both name -> value, with "const"), `rsquared_`, `rsquared_adj_`, `loo_rsquared_`
    (1 - PRESS / total sum of squares: leave-one-out predictions from the hat matrix), `n_subsets_`,
    `dropped_` (name -> reason), `note_`; `missing_` (subset -> indicator -> rows left out of its mean for
    lacking a value) when `train.instructmining.fit_rule` fitted it.
    """

    def __init__(self, indicators: Sequence[str] | None = None, *, log_loss: bool = True, tol: float = 1e-9):
        self.indicators = list(indicators) if indicators is not None else None
        self.log_loss = log_loss
        self.tol = tol

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[float]) -> InstructMiningRule:
        """`X`: one row per subset of mean indicator values (an array with `indicators` given, or a mapping /
        DataFrame of name -> values); `y`: each subset's eval loss (> 0)."""
        sm = require("statsmodels.api", "fitting an InstructMining rule", extra="mining")

        names, M = self._matrix(X)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1 or len(y) != len(M):
            raise OptionError(f"{len(M)} subsets of indicators but {np.size(y)} losses")
        if not np.all(np.isfinite(M)):
            bad = sorted({names[j] for j in np.flatnonzero(~np.isfinite(M).all(axis=0))})
            raise OptionError(f"indicator values are missing or not finite: {', '.join(bad)}")
        if self.log_loss and not np.all(y > 0):
            raise OptionError("every eval loss must be > 0 to take its log")
        target = np.log(y) if self.log_loss else y
        keep, dropped = self._independent(names, M)
        p = len(keep)
        if len(y) <= p + 1:
            raise OptionError(f"{len(y)} subsets cannot fit an intercept and {p} indicators: give more than {p + 1}")
        design = sm.add_constant(M[:, keep], has_constant="add")
        res = sm.OLS(target, design).fit()
        kept = [names[j] for j in keep]
        params, bse, pvalues = (np.asarray(a, dtype=np.float64) for a in (res.params, res.bse, res.pvalues))
        self.indicators_ = kept
        self.intercept_ = float(params[0])
        self.coef_ = {n: float(v) for n, v in zip(kept, params[1:], strict=True)}
        self.bse_ = {n: float(v) for n, v in zip(["const", *kept], bse, strict=True)}
        self.pvalues_ = {n: float(v) for n, v in zip(["const", *kept], pvalues, strict=True)}
        self.rsquared_ = float(res.rsquared)
        self.rsquared_adj_ = float(res.rsquared_adj)
        self.loo_rsquared_ = _loo_rsquared(design, target, np.asarray(res.resid))
        self.n_subsets_ = len(y)
        self.dropped_ = dropped
        self.note_ = f"fitted on {len(y)} subsets"
        return self

    def _matrix(self, X: Any) -> tuple[list[str], np.ndarray]:
        if isinstance(X, Mapping) or hasattr(X, "columns"):
            names = self.indicators or [str(c) for c in (X.keys() if isinstance(X, Mapping) else X.columns)]
            missing = [n for n in names if n not in X]
            if missing:
                raise OptionError(f"no values for the indicators {', '.join(missing)}")
            M = np.column_stack([np.asarray(X[n], dtype=np.float64) for n in names])
            return names, M
        M = np.asarray(X, dtype=np.float64)
        if M.ndim != 2:
            raise OptionError("X is a 2-D array: one row per subset, one column per indicator")
        names = self.indicators or [f"x{j}" for j in range(M.shape[1])]
        if len(names) != M.shape[1]:
            raise OptionError(f"{len(names)} indicator names for {M.shape[1]} columns")
        return names, M

    def _independent(self, names: list[str], M: np.ndarray) -> tuple[list[int], dict[str, str]]:
        """Columns kept (each raises the rank of [1, kept...]) and the dropped ones with their reason."""
        keep: list[int] = []
        dropped: dict[str, str] = {}
        scale = np.maximum(np.abs(M).max(axis=0), 1e-300)
        Z = M / scale  # rank decisions on a common scale
        ones = np.ones((len(M), 1))
        for j in range(M.shape[1]):
            if np.ptp(M[:, j]) <= self.tol * scale[j]:
                dropped[names[j]] = "constant across the subsets"
                continue
            base = np.hstack([ones, Z[:, keep]])
            trial = np.hstack([base, Z[:, [j]]])
            if np.linalg.matrix_rank(trial, tol=1e-8 * max(1.0, len(M))) <= np.linalg.matrix_rank(
                base, tol=1e-8 * max(1.0, len(M))
            ):
                before = ", ".join(names[i] for i in keep) or "the intercept"
                dropped[names[j]] = f"collinear with {before}"
                continue
            keep.append(j)
        return keep, dropped

    # -- applying ------------------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Predicted log loss (lower is better) for each row of `X` (array columns in `indicators_` order,
        or a mapping / DataFrame by name)."""
        self._check_fitted()
        if isinstance(X, Mapping) or hasattr(X, "columns"):
            M = np.column_stack([np.asarray(X[n], dtype=np.float64) for n in self.indicators_])
        else:
            M = np.asarray(X, dtype=np.float64).reshape(-1, len(self.indicators_))
        return self.intercept_ + M @ np.asarray([self.coef_[n] for n in self.indicators_])

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise OptionError("this InstructMining rule is not fitted: fit it or load one")

    # -- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return _clean(
            {
                "kind": "instructmining-rule/1",
                "target": "log(eval loss)" if self.log_loss else "eval loss",
                "indicators": self.indicators_,
                "intercept": self.intercept_,
                "coef": self.coef_,
                "bse": getattr(self, "bse_", {}),
                "pvalues": getattr(self, "pvalues_", {}),
                "rsquared": getattr(self, "rsquared_", None),
                "rsquared_adj": getattr(self, "rsquared_adj_", None),
                "loo_rsquared": getattr(self, "loo_rsquared_", None),
                "n_subsets": getattr(self, "n_subsets_", None),
                "dropped": getattr(self, "dropped_", {}),
                "missing": getattr(self, "missing_", {}),
                "note": getattr(self, "note_", ""),
            }
        )

    def save(self, path: str | os.PathLike) -> None:
        from ..atomic import write_text

        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<rule>") -> InstructMiningRule:
        try:
            names = [str(n) for n in data["indicators"]]
            coef = {n: float(data["coef"][n]) for n in names}
            intercept = float(data["intercept"])
        except (KeyError, TypeError, ValueError) as e:
            raise OptionError(
                f"{source}: not an InstructMining rule (needs indicators, intercept, coef: {e})"
            ) from None
        rule = cls(names, log_loss=data.get("target", "log(eval loss)") != "eval loss")
        rule.indicators_, rule.intercept_, rule.coef_ = names, intercept, coef

        def num(v: Any) -> float:
            return float("nan") if v is None else float(v)

        rule.bse_ = {k: num(v) for k, v in (data.get("bse") or {}).items()}
        rule.pvalues_ = {k: num(v) for k, v in (data.get("pvalues") or {}).items()}
        for attr in ("rsquared", "rsquared_adj", "loo_rsquared"):
            setattr(rule, attr + "_", num(data.get(attr)))
        rule.n_subsets_ = data.get("n_subsets")
        rule.dropped_ = dict(data.get("dropped") or {})
        rule.missing_ = {str(k): dict(v) for k, v in (data.get("missing") or {}).items()}
        rule.note_ = str(data.get("note") or "")
        return rule

    @classmethod
    def load(cls, path: str | os.PathLike) -> InstructMiningRule:
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise OptionError(f"{path}: no such rule file (a JSON file that `InstructMiningRule.save` wrote)")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise OptionError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, str(path))

    def summary(self) -> str:
        """The rule as one line: log L = b0 + b1 x1 + ..."""
        self._check_fitted()
        terms = " ".join(f"{'-' if v < 0 else '+'} {abs(v):.4g}*{n}" for n, v in self.coef_.items())
        return f"{'log L' if self.log_loss else 'L'} = {self.intercept_:.4g} {terms}"


def _loo_rsquared(design: np.ndarray, target: np.ndarray, resid: np.ndarray) -> float:
    """1 - PRESS / SST, PRESS = sum (e_i / (1 - h_ii))^2: the R^2 of leave-one-out predictions."""
    h = np.einsum("ij,ji->i", design, np.linalg.pinv(design))
    sst = float(((target - target.mean()) ** 2).sum())
    if sst == 0 or np.any(h >= 1 - 1e-12):
        return float("nan")
    press = float(((resid / (1 - h)) ** 2).sum())
    return 1.0 - press / sst


def paper_rule() -> InstructMiningRule:
    """The paper's LLaMA-2-7B rule (Cao et al., arXiv:2307.06290); see PAPER_NOTE for when it holds."""
    return InstructMiningRule.from_dict(
        {
            "indicators": ["reward", "output_tokens", "knn6"],
            "intercept": 1.0694,
            "coef": {"reward": -0.1498, "output_tokens": 8.257e-5, "knn6": -0.9350},
            "note": PAPER_NOTE,
        },
        "paper",
    )


def load_rule(spec: str | os.PathLike) -> InstructMiningRule:
    """`paper` (the published rule) or a rule JSON file."""
    return paper_rule() if str(spec) == "paper" else InstructMiningRule.load(spec)


@register("select", "indicators")
@dataclass
class Indicators:
    """InstructMining's derived indicators as named columns of the score table, so that a score table for
    the method holds every column its rule reads: `ppl` = exp(loss_cond) and `knnK`, each row's mean
    distance to its K nearest neighbours among the rows still kept (as the rule ranks them). It decides
    nothing: every row stays kept, and a score-only run (`instructsift score`) keeps the step."""

    names: list[str]
    embedding: str = "embedding"
    adds_columns_only: ClassVar[bool] = True  # drops no row: a score-only run keeps it

    def __post_init__(self) -> None:
        bad = [n for n in self.names if n != "ppl" and not is_knn(n)]
        if bad or not self.names:
            raise OptionError(f"indicators derives ppl and knnK (e.g. knn6), not {', '.join(bad) or 'nothing'}")

    def writes(self) -> list[str]:
        """The columns `columns` adds (a recipe's later steps may read them)."""
        return list(self.names)

    def describe(self) -> str:
        return f"derived indicators {', '.join(self.names)} (ppl = exp(loss_cond); knnK among the rows kept)"

    def columns(self, table: Any, selection: Selection) -> dict[str, Any]:
        import pyarrow as pa

        rows = selection.kept
        M = indicator_values(table, self.names, rows, self.embedding)
        return {n: pa.array(_full(table.num_rows, rows, M[:, j]), pa.float64()) for j, n in enumerate(self.names)}

    def apply(self, table: Any, selection: Selection) -> None:
        """Keeps every row."""


@register("select", "instructmining")
@dataclass
class InstructMiningSelect(Sized):
    """Rank the kept rows by an InstructMining rule's predicted log loss (lowest first) and keep `k` (or
    `ratio`). `rule` is `paper` or a fitted rule's JSON. Rows lacking an indicator are dropped with the
    reason. The prediction is added to the score table as `column`, and KNN indicators as `knnK`."""

    size_optional: ClassVar[bool] = True  # no size: keep every row it ranks

    rule: ModelRef = "paper"  # a fitted rule's JSON, or the name paper
    ratio: float | None = None
    k: int | None = None
    of: str = "all"
    column: str = "instructmining"
    embedding: str = "embedding"

    def __post_init__(self) -> None:
        _ = self.amount  # checked when built
        # "@NAME" is a fit step's product, known when the step runs (the pipeline builds the selector again)
        self._rule = None if self.rule.startswith("@") else load_rule(self.rule)

    def ranking(self) -> tuple[str, bool]:
        """The score column this selector ranks by (the predicted log loss), and whether highest first."""
        return self.column, False

    def writes(self) -> list[str] | None:
        """The columns `columns` adds: the prediction and the rule's KNN indicators (None while the rule is a
        fit step's product, not known before it runs)."""
        if self._rule is None:
            return None
        return [*(n for n in self._rule.indicators_ if is_knn(n)), self.column]

    def describe(self) -> str:
        size = "" if (a := self.amount) is None else f", keep {a.describe(self.of)}"
        what = self._rule.summary() if self._rule is not None else self.rule
        note = f". {PAPER_NOTE}" if self.rule == "paper" else ""
        return f"InstructMining rule {what} (lowest first){size}{note}"

    def predictions(self, table: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indicator matrix, predicted log loss) for `rows`; NaN where an indicator is missing."""
        M = indicator_values(table, self._rule.indicators_, rows, self.embedding)
        return M, self._rule.predict(M)

    def columns(self, table: Any, selection: Selection) -> dict[str, Any]:
        """Columns this step adds to the score table: the prediction and KNN indicators (null for rows
        not ranked)."""
        import pyarrow as pa

        rows = selection.kept
        M, pred = self.predictions(table, rows)
        out = {}
        for j, name in enumerate(self._rule.indicators_):
            if is_knn(name) and name not in table.column_names:
                out[name] = _full(table.num_rows, rows, M[:, j])
        out[self.column] = _full(table.num_rows, rows, pred)
        return {k: pa.array(v, pa.float64()) for k, v in out.items()}

    def apply(self, table: Any, selection: Selection) -> None:
        if self.rule == "paper":  # shown on the run's stderr: the published rule holds only with its models
            warnings.warn(f"--rule paper: {PAPER_NOTE}", UserWarning, stacklevel=2)
        rows = selection.kept
        M, pred = self.predictions(table, rows)
        missing = ~np.isfinite(pred)  # NaN (an indicator missing) or +-inf: never a score
        why = [unscored_reason(self._rule.indicators_, M[i], pred[i]) for i in np.flatnonzero(missing)]
        selection.drop(rows[missing], "not scored", why)
        rows, pred = rows[~missing], pred[~missing]
        amount = self.amount
        if amount is None:
            order = np.lexsort((rows, pred))
            for rank, i in enumerate(rows[order].tolist(), start=1):
                selection.rank[i] = rank
            return
        base = table.num_rows if self.of == "all" else len(rows) + int(missing.sum())
        n = selection.size(amount, base, of_all=self.of == "all", what="top by the rule")
        order = np.lexsort((rows, pred))
        ranked = rows[order]
        for rank, i in enumerate(ranked[:n].tolist(), start=1):
            selection.rank[i] = rank
        rest = order[n:]
        selection.drop(
            rows[rest], f"not in the best {n} by {self.column}", [f"predicted log loss {v:.4g}" for v in pred[rest]]
        )


def unscored_reason(names: Sequence[str], values: np.ndarray, pred: float) -> str:
    """Why a row has no finite prediction: the indicators it lacks, those that are infinite."""
    parts = []
    lacking = [n for n, v in zip(names, values, strict=True) if np.isnan(v)]
    if lacking:
        parts.append(f"no {', '.join(lacking)}")
    infinite = [f"{n} is {v}" for n, v in zip(names, values, strict=True) if np.isinf(v)]
    if infinite:
        parts.append(", ".join(infinite))
    return "; ".join(parts) or f"the predicted log loss is {pred}"


def _full(n: int, rows: np.ndarray, values: np.ndarray) -> list[float | None]:
    """A column of `n` values: `values` at `rows`, null elsewhere and wherever a value is not finite."""
    out: list[float | None] = [None] * n
    for i, v in zip(rows.tolist(), values.tolist(), strict=True):
        out[i] = v if math.isfinite(v) else None
    return out


__all__ = [
    "PAPER_NOTE",
    "InstructMiningRule",
    "InstructMiningSelect",
    "indicator_values",
    "is_knn",
    "knn_distance",
    "load_rule",
    "paper_rule",
    "unscored_reason",
    "Indicators",
]
