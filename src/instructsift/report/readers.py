"""Tolerant readers for the files a report shows beside the score table.

Each takes what other commands write and ignores fields it does not know; a file it cannot use at all
(missing, not JSON, no usable entries) is a `UserError` naming the file (and line, for JSON Lines).

- `--dropped FILE` (select/run `--dropped`): JSON Lines, one dropped row each, with `row` and `id` (to
  match the score table) and `step`, `code`, `detail` (why it was dropped).
- `--compare DIR` (or its `results.json`): a JSON object whose `trials` (or `results`, or the top-level
  list) hold one object per fine-tuned subset. Read per trial: `name` (or `method`, `label`), `n` (or
  `size`, `examples`), `tokens`, `eval_loss` (or `loss`), `seconds` (or `time`, `time_s`), and `seed`
  when there is one; missing numbers show as blanks. `selections` (method -> {ids}) gives each method's pick. Trials named `random...` form the random band, a
  trial named `full...` the full-data line.
- `--mining DIR` (what `experiments.mining.mine` writes): `rule.json` (the fitted rule), `search.jsonl` (the
  size search's journal: the curve), `summary.json` (`best_k`; its `rule` when rule.json is missing) and
  `experiments.json` (the subsets' losses). `--rule` and `--curve` name single files instead.
- `--rule FILE` (InstructMining's fitted rule, as `InstructMiningRule.save` writes it): `coef` (name ->
  coefficient), `bse`, `pvalues` (name -> value), `intercept`, `rsquared`, `rsquared_adj`, `loo_rsquared`,
  `n_subsets`, `dropped` (name -> reason), `target`, `note`; or a summary.json holding it under `rule`.
  Also read: `coefficients` as a mapping or a list of {name, coef, std_err, p_value}, `r2`, `loo_r2`.
- `--curve FILE` (InstructMining's subset-size search): its journal `search.jsonl` (a header line, then one
  {k, loss, how} per trial, `how` being `search` or `sweep`), mine's summary.json (`search.trials`,
  `best_k`), or a JSON object whose `trials` (or `curve`, `points`, or the top-level list) hold {k (or n,
  size), eval_loss (or loss), kind?}; `best_k` when present is marked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.errors import MissingFileError, UserError, literal


def _error(where: Path | str, why: str, option: str, cls: type[UserError] = UserError) -> UserError:
    """`where: why`, `why` naming the report's `option` that gave the file as `{option}` (`compare=` in
    Python, `--compare` on the command line); `where` is text, braces and all."""
    return cls(f"{literal(str(where))}: {why}", option)


def _load_json(path: Path, option: str) -> Any:
    """The JSON file that the report's `option` names."""
    if not path.is_file():
        raise _error(path, f"no such file ({{{option}}})", option, MissingFileError)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise _error(path, f"not UTF-8 text ({{{option}}}): {literal(e.reason)}", option) from None
    except json.JSONDecodeError as e:
        raise _error(f"{path}, line {e.lineno}", f"not valid JSON ({{{option}}}): {literal(e.msg)}", option) from None


def _pick(obj: dict[str, Any], *names: str) -> Any:
    return next((obj[n] for n in names if obj.get(n) is not None), None)


def _number(value: Any) -> float | None:
    """A finite number, or None (a string like "1.5" counts; NaN and text do not)."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _entries(data: Any, keys: tuple[str, ...]) -> list[dict[str, Any]] | None:
    """The list of objects under the first of `keys` (or `data` itself when it is a list)."""
    items = data if isinstance(data, list) else next((data[k] for k in keys if isinstance(data.get(k), list)), None)
    if items is None:
        return None
    return [x for x in items if isinstance(x, dict)]


# -- dropped rows ----------------------------------------------------------------------------------------
def read_dropped(path: Path) -> list[dict[str, Any]]:
    """The dropped file's lines as {row, id, step, code, detail} (the record is not kept)."""
    if not path.is_file():
        raise _error(path, "no such file ({dropped})", "dropped", MissingFileError)
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise _error(
                    f"{path}, line {n}", f"not valid JSON ({{dropped}}): {literal(e.msg)}", "dropped"
                ) from None
            if not isinstance(obj, dict) or not isinstance(obj.get("row"), int) or not obj.get("code"):
                why = "not a dropped row (needs `row` and `code`, as {dropped} writes them)"
                raise _error(f"{path}, line {n}", why, "dropped")
            out.append({k: obj.get(k) for k in ("row", "id", "step", "code", "detail")} | {"line": n})
    return out


# -- compare -----------------------------------------------------------------------------------------
@dataclass
class Trial:
    name: str
    n: float | None = None
    tokens: float | None = None
    eval_loss: float | None = None
    seconds: float | None = None
    seed: Any = None

    @property
    def group(self) -> str:
        """`random` for every random trial (random, random-1, random@seed2, ...), else the name."""
        return "random" if self.name.lower().startswith("random") else self.name


@dataclass
class CompareResults:
    path: Path
    trials: list[Trial]
    settings: dict[str, Any] = field(default_factory=dict)
    picks: dict[str, list[str]] = field(default_factory=dict)  # method -> the ids it selected (`selections`)

    def random_losses(self) -> list[float]:
        return [t.eval_loss for t in self.trials if t.group == "random" and t.eval_loss is not None]

    def full_loss(self) -> float | None:
        return next(
            (t.eval_loss for t in self.trials if t.name.lower().startswith("full") and t.eval_loss is not None), None
        )


def read_compare(path: Path) -> CompareResults:
    """`compare`'s results.json, given as the folder or the file."""
    file = path / "results.json" if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        raise _error(
            path, "no results.json in this folder ({compare}: a folder `compare` wrote)", "compare", MissingFileError
        )
    data = _load_json(file, "compare")
    items = _entries(data, ("trials", "results", "runs")) if isinstance(data, dict | list) else None
    if not items:
        raise _error(
            file, "no trials found ({compare} expects a `trials` list of {{name, n, eval_loss, ...}})", "compare"
        )
    trials = []
    for i, t in enumerate(items):
        name = _pick(t, "name", "method", "label", "subset")
        if name is None:
            raise _error(file, f"trial {i + 1} has no `name` ({{compare}})", "compare")
        trials.append(
            Trial(
                name=str(name),
                n=_number(_pick(t, "n", "size", "examples")),
                tokens=_number(t.get("tokens")),
                eval_loss=_number(_pick(t, "eval_loss", "loss")),
                seconds=_number(_pick(t, "seconds", "time", "time_s")),
                seed=t.get("seed"),
            )
        )
    settings = data.get("settings") if isinstance(data, dict) and isinstance(data.get("settings"), dict) else {}
    sel = data.get("selections") if isinstance(data, dict) and isinstance(data.get("selections"), dict) else {}
    picks = {str(m): [str(i) for i in v["ids"]] for m, v in sel.items() if isinstance(v, dict)
             and isinstance(v.get("ids"), list)}  # fmt: skip
    return CompareResults(file, trials, settings, picks)


# -- InstructMining ----------------------------------------------------------------------------------
@dataclass
class Rule:
    path: Path
    coefficients: list[dict[str, Any]]  # {name, coef, std_err, p_value}
    intercept: float | None = None
    r2: float | None = None
    loo_r2: float | None = None
    dropped: list[str] = field(default_factory=list)  # "name (reason)"
    target: str | None = None
    r2_adj: float | None = None
    n_subsets: int | None = None
    intercept_std_err: float | None = None
    intercept_p_value: float | None = None


def read_rule(path: Path) -> Rule:
    """InstructMining's fitted rule (rule.json), or the `rule` inside mine's summary.json."""
    data = _load_json(path, "rule")
    if isinstance(data, dict) and isinstance(data.get("rule"), dict):
        data = data["rule"]
    if not isinstance(data, dict):
        raise _error(path, "not a JSON object ({rule} expects InstructMining's fitted rule JSON)", "rule")
    coefs = data.get("coefficients", data.get("coef"))
    bse = data.get("bse") if isinstance(data.get("bse"), dict) else {}
    pvalues = data.get("pvalues") if isinstance(data.get("pvalues"), dict) else {}
    rows: list[dict[str, Any]] = []
    if isinstance(coefs, dict):
        for name, v in coefs.items():
            if isinstance(v, dict):
                rows.append({"name": name, **_coef_fields(v)})
            else:
                se, p = _number(bse.get(name)), _number(pvalues.get(name))
                rows.append({"name": name, "coef": _number(v), "std_err": se, "p_value": p})
    elif isinstance(coefs, list):
        for c in coefs:
            if isinstance(c, dict) and c.get("name") is not None:
                rows.append({"name": str(c["name"]), **_coef_fields(c)})
    if not rows:
        raise _error(
            path, "no coefficients found ({rule} expects InstructMining's fitted rule JSON, with `coef`)", "rule"
        )
    dropped = data.get("dropped") or data.get("collinear") or []
    if isinstance(dropped, dict):
        dropped = [f"{k} ({v})" if v else str(k) for k, v in dropped.items()]
    n_subsets = _number(data.get("n_subsets"))
    return Rule(
        path,
        rows,
        intercept=_number(data.get("intercept")),
        r2=_number(_pick(data, "rsquared", "r2", "r_squared")),
        loo_r2=_number(_pick(data, "loo_rsquared", "loo_r2", "r2_loo")),
        dropped=[str(x) for x in dropped] if isinstance(dropped, list) else [],
        target=str(data["target"]) if data.get("target") is not None else None,
        r2_adj=_number(_pick(data, "rsquared_adj", "r2_adj")),
        n_subsets=int(n_subsets) if n_subsets is not None else None,
        intercept_std_err=_number(bse.get("const")),
        intercept_p_value=_number(pvalues.get("const")),
    )


def _coef_fields(c: dict[str, Any]) -> dict[str, float | None]:
    return {
        "coef": _number(_pick(c, "coef", "value", "coefficient")),
        "std_err": _number(_pick(c, "std_err", "se", "stderr", "bse")),
        "p_value": _number(_pick(c, "p_value", "p", "pvalue")),
    }


@dataclass
class Curve:
    path: Path
    points: list[dict[str, Any]]  # {k, eval_loss, kind}
    best_k: float | None = None


def read_curve(path: Path, best_k: float | None = None) -> Curve:
    """The subset-size curve: the search's journal (search.jsonl), mine's summary.json, or a JSON list."""
    if path.suffix == ".jsonl":
        items, best = _journal(path), None
    else:
        data = _load_json(path, "curve")
        if isinstance(data, dict) and isinstance(data.get("search"), dict):  # mine's summary.json
            data = {"best_k": data.get("best_k"), **data["search"]}
        items = _entries(data, ("trials", "curve", "points", "results")) if isinstance(data, dict | list) else None
        best = _number(data.get("best_k")) if isinstance(data, dict) else None
    points = []
    for t in items or []:
        k, loss = _number(_pick(t, "k", "n", "size")), _number(_pick(t, "eval_loss", "loss"))
        if k is not None and loss is not None:
            points.append({"k": k, "eval_loss": loss, "kind": str(_pick(t, "kind", "how", "source") or "trial")})
    if not points:
        raise _error(path, "no points found ({curve} expects search.jsonl or a `trials` list of {{k, loss}})", "curve")
    return Curve(path, sorted(points, key=lambda p: p["k"]), best_k if best_k is not None else best)


def _journal(path: Path) -> list[dict[str, Any]]:
    """The trials of a size-search journal (`experiments/search.py`): a header line, then {k, loss, how} lines; a
    last line cut short by a kill is left out, as the search itself does."""
    if not path.is_file():
        raise _error(path, "no such file ({curve})", "curve", MissingFileError)
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines) and n > 1:
                break
            raise _error(f"{path}, line {n}", f"not valid JSON ({{curve}}): {literal(e.msg)}", "curve") from None
        if isinstance(obj, dict) and "k" in obj:
            out.append(obj)
    return out


@dataclass
class Mining:
    """What an InstructMining output folder holds (any part may be missing)."""

    path: Path
    rule: Rule | None
    curve: Curve | None
    experiments: list[float] = field(default_factory=list)  # each fitted subset's eval loss


def read_mining(path: Path) -> Mining:
    """A folder `experiments.mining.mine` wrote: rule.json, search.jsonl (the curve), summary.json, experiments.json."""
    if not path.is_dir():
        why = "no such folder ({mining}: the output folder of InstructMining's mine)"
        raise _error(path, why, "mining", MissingFileError)
    summary = path / "summary.json"
    best = None
    if summary.is_file():
        data = _load_json(summary, "mining")
        best = _number(data.get("best_k")) if isinstance(data, dict) else None
    rule_file = path / "rule.json" if (path / "rule.json").is_file() else summary if summary.is_file() else None
    rule = read_rule(rule_file) if rule_file else None
    journal = path / "search.jsonl"
    curve = read_curve(journal, best) if journal.is_file() else read_curve(summary, best) if summary.is_file() else None
    losses: list[float] = []
    if (path / "experiments.json").is_file():
        data = _load_json(path / "experiments.json", "mining")
        items = _entries(data, ("subsets",)) if isinstance(data, dict | list) else None
        losses = [x for x in (_number(s.get("loss")) for s in items or []) if x is not None]
    if rule is None and curve is None:
        raise _error(
            path, "neither rule.json nor search.jsonl nor summary.json ({mining}: a folder mine wrote)", "mining"
        )
    return Mining(path, rule, curve, losses)
