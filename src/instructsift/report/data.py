"""What a report shows, gathered from a finished run (`from_run`) or from files (`from_files`).

Everything is aligned with the score table's rows: texts, kept/dropped, the reasons, and each selection
as a mask. Nothing here draws.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import UserError
from .readers import CompareResults, Curve, Rule, read_compare, read_curve, read_dropped, read_mining, read_rule

BOOKKEEPING = ("row", "id", "content_hash")
# Numeric columns that scorers write to account for a score, not to rank by (IFD's token and turn counts):
# drawn only with `report --bookkeeping`. (Scorers' own column declarations can replace this list.)
ACCOUNTING = ("prompt_tokens", "answer_tokens", "n_turns", "turns_scored", "truncated", "judge_mass")
NUMERIC = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double", "halffloat")


@dataclass
class ReportData:
    """The score table and everything known about its rows. `kept` is None when no selection is known."""

    table: Any  # pyarrow Table: row, id, score columns
    title: str = "instructsift report"
    examples: list[Any] | None = None  # `Example` per table row, when the data was given
    kept: np.ndarray | None = None  # bool per row
    reasons: list[dict[str, Any] | None] | None = None  # per row {step, code, detail}; None when kept
    n_read: int | None = None
    rejects: Counter[str] = field(default_factory=Counter)  # reason -> rows
    notes: Counter[str] = field(default_factory=Counter)
    selections: dict[str, np.ndarray] = field(default_factory=dict)  # name -> bool mask over rows
    compare: CompareResults | None = None
    rule: Rule | None = None
    curve: Curve | None = None
    experiments: list[float] = field(default_factory=list)  # InstructMining's fitted subsets' eval losses
    cuts: dict[str, list[Any]] = field(default_factory=dict)  # extra cut-offs per column (compare: per method)
    sources: dict[str, str] = field(default_factory=dict)  # what was read, for the page's header
    thresholds: list[tuple[str, str, float, str | None]] = field(default_factory=list)  # (column, op, value, step)
    cache_dir: Path | None = None

    @property
    def n(self) -> int:
        return self.table.num_rows

    def score_columns(self) -> list[str]:
        """Numeric score columns with at least one value (not row/id, not booleans, lists or reasons)."""
        out = []
        for f in self.table.schema:
            if f.name in BOOKKEEPING or str(f.type) not in NUMERIC:
                continue
            if self.table.column(f.name).null_count < self.n:
                out.append(f.name)
        return out

    def values(self, name: str) -> np.ndarray:
        """A column as float64 with NaN for nulls."""
        return self.table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    def embedding_column(self) -> str | None:
        """A vector column of the table (`embedding`, or a namespaced `NS.embedding`), if any."""
        for f in self.table.schema:
            t = str(f.type)
            vector = (t.startswith("fixed_size_list<") or t.startswith("list<")) and ("float" in t or "double" in t)
            if vector and "embed" in f.name.split(".")[-1]:
                return f.name
        return None

    def text(self, i: int) -> tuple[str, str] | None:
        """(instruction, response) of row i, when the data is known."""
        if self.examples is None:
            return None
        ex = self.examples[i]
        return ex.instruction, ex.response

    def reason_text(self, i: int) -> str:
        if self.kept is None:
            return ""
        if self.kept[i]:
            return "kept"
        r = (self.reasons or [None] * self.n)[i]
        if not r:
            return "dropped"
        return f"dropped: {r['code']}" + (f" ({r['detail']})" if r.get("detail") else "")


# -- cut-offs --------------------------------------------------------------------------------------------
_FAILS = re.compile(r"^fails (\S+) (<=|>=|==|!=|<|>) (\S+)$")
_TOP = re.compile(r"^not in the top (\d+) by (\S+)$")


@dataclass
class Cut:
    column: str
    value: float
    label: str


def cutoffs(data: ReportData) -> dict[str, list[Cut]]:
    """Per score column, the thresholds and top-k cut-offs the selection applied: the recipe's thresholds
    (`data.thresholds`, known for a run), and those read back from the drop codes (`fails ifd_ppl < 1`,
    `not in the top 8 by ifd_ppl`) that every selector writes."""
    names = data.score_columns()
    declared = [(f"fails {c} {op} {v:g}", step) for c, op, v, step in data.thresholds]
    if data.reasons is None or data.kept is None:
        return {}
    by_code: dict[tuple[str, str | None], list[int]] = {}
    for i, r in enumerate(data.reasons):
        if r:
            by_code.setdefault((r["code"], r.get("step")), []).append(i)
    out: dict[str, list[Cut]] = {}
    seen: set[tuple[str, str]] = set()
    for code, step in declared:
        by_code.setdefault((code, step), [])
    for (code, step), rows in by_code.items():
        if m := _FAILS.match(code):
            col = _resolve(m.group(1), step, names)
            value = _num(m.group(3))
            if col and value is not None and (col, code) not in seen:
                seen.add((col, code))
                out.setdefault(col, []).append(Cut(col, value, f"keep {m.group(1)} {m.group(2)} {m.group(3)}"))
        elif m := _TOP.match(code):
            col = _resolve(m.group(2), step, names)
            if not col or (col, code) in seen:
                continue
            seen.add((col, code))
            values = data.values(col)
            dropped = values[rows]
            kept = values[data.kept]
            dropped, kept = dropped[~np.isnan(dropped)], kept[~np.isnan(kept)]
            if not len(dropped) or not len(kept):
                continue
            highest = np.min(kept) >= np.max(dropped)
            value = float(np.min(kept) if highest else np.max(kept))
            out.setdefault(col, []).append(Cut(col, value, f"top {m.group(1)} by {m.group(2)}: {value:.4g}"))
    return out


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _resolve(name: str, step: str | None, columns: list[str]) -> str | None:
    """The table column a selector's bare name refers to: `NS.name` for a namespaced step (`NS/top`),
    the name itself, or the one `*.name` column."""
    if step and "/" in step and f"{step.split('/')[0]}.{name}" in columns:
        return f"{step.split('/')[0]}.{name}"
    if name in columns:
        return name
    matches = [c for c in columns if c.endswith(f".{name}")]
    return matches[0] if len(matches) == 1 else None


# -- gathering -----------------------------------------------------------------------------------------
def from_run(result: Any, *, title: str | None = None, extras: dict[str, Any] | None = None) -> ReportData:
    """A finished `pipeline.run`: its data set, score table and selection."""
    picked = result.picked
    sel = picked.selection
    dataset = picked.dataset
    rejects = _reject_counts(dataset.rejects)
    kept = np.asarray(sel.keep, dtype=bool).copy()
    has_selection = any(st.kind == "select" for st in result.recipe.steps)
    data = ReportData(
        table=picked.scores,
        title=title or f"instructsift report: {Path(dataset.path).name}",
        examples=list(dataset.examples),
        kept=kept if has_selection else None,
        reasons=[sel.reason(i) for i in range(len(kept))] if has_selection else None,
        n_read=dataset.n_read,
        rejects=rejects,
        notes=Counter(dataset.notes),
        sources={"data": str(dataset.path), "recipe": str(result.recipe.source)},
        cache_dir=result.recipe.path("cache_dir"),
    )
    if has_selection:
        data.selections["this run"] = kept
    data.thresholds = _thresholds(result.recipe.steps)
    _add_extras(data, **(extras or {}))
    return data


def from_files(
    scores: Path,
    *,
    data: Path | None = None,
    dropped: Path | None = None,
    selections: list[Path] = (),
    compare: Path | None = None,
    rule: Path | None = None,
    curve: Path | None = None,
    mining: Path | None = None,
    title: str | None = None,
    format: str | None = None,
    split: str | None = None,
    subset: str | None = None,
    revision: str | None = None,
) -> ReportData:
    """A score table (`score`, `select --save-scores`) and what the user gives beside it; `data` is a path
    or a hub id (read with `split`, `subset`, `revision`)."""
    from ..api import read, read_scores

    scores = Path(scores)
    table = _read_table(scores)
    out = ReportData(table=table, title=title or f"instructsift report: {scores.name}", sources={"scores": str(scores)})
    if data is not None:
        dataset = read(data, format=format, on_error="skip", split=split, subset=subset, revision=revision)
        table = read_scores(scores, dataset)  # checks that every row's id matches
        out.table, out.examples, out.n_read = table, list(dataset.examples), dataset.n_read
        out.rejects = _reject_counts(dataset.rejects)
        out.notes = Counter(dataset.notes)
        out.sources["data"] = str(data)
    if dropped is not None:
        _apply_dropped(out, Path(dropped))
    for path in selections:
        name = _unique(Path(path).name, out.selections)
        out.selections[name] = _selection_mask(out, Path(path))
        out.sources[f"selection {name}"] = str(path)
    if out.kept is None and out.selections:  # no --dropped: the first selection says what was kept
        first = next(iter(out.selections))
        out.kept = out.selections[first].copy()
        out.reasons = [None if k else {"step": None, "code": f"not in {first}", "detail": None} for k in out.kept]
    elif out.kept is not None and dropped is not None:
        out.selections = {"kept (--dropped)": out.kept, **out.selections}
    _add_extras(out, compare=compare, rule=rule, curve=curve, mining=mining)
    _add_compare_picks(out)
    return out


def _add_compare_picks(out: ReportData) -> None:
    """compare's picks (results.json's `selections`) join the overlap when their ids are this table's rows
    (a comparison of another data set is shown without them, and the page says so)."""
    if out.compare is None or not out.compare.picks:
        return
    at = {v: i for i, v in enumerate(out.table.column("id").to_pylist())}
    for method, ids in out.compare.picks.items():
        if ids and all(i in at for i in ids):
            mask = np.zeros(out.n, dtype=bool)
            mask[[at[i] for i in ids]] = True
            out.selections[_unique(f"{method} (compare)", out.selections)] = mask
        else:
            out.sources[f"compare {method}"] = "its picked ids are not all in this score table: not in the overlap"


def _thresholds(steps: list[Any]) -> list[tuple[str, str, float, str | None]]:
    """The (column, op, value, step label) of every threshold step of a recipe's main chain (not a fit
    step's own selectors)."""
    from ..selection.threshold import parse_where

    out = []
    for st in steps:
        if st.kind == "select" and st.name == "threshold" and isinstance(st.options.get("where"), str):
            out += [(c, op, v, st.label) for c, op, v in parse_where(st.options["where"])]
    return out


def from_compare(compare: Path, *, title: str | None = None) -> ReportData:
    """A page of `compare`'s results alone (its table and plot): what `compare --report` can write when it
    has no score table to show."""
    import pyarrow as pa

    empty = pa.table({"row": pa.array([], pa.int64()), "id": pa.array([], pa.string())})
    data = ReportData(table=empty, title=title or f"instructsift compare: {Path(compare).name}")
    _add_extras(data, compare=compare)
    return data


def from_comparison(
    compare: Path, dataset: Any, runs: dict[str, Any], picks: dict[str, list[int]], *, title: str | None = None
) -> ReportData:
    """`compare --report`: its results (loss table and plot) with the methods' own runs (`runs`: method ->
    `pipeline.run` result): their score columns, cut-offs and picks, and the random picks (`picks`: trial ->
    positions in `dataset`) beside them in the overlap. One method's run is shown as `select --report` shows
    it; several share one table (a column two methods computed differently is named `METHOD.column`)."""
    import pyarrow as pa

    per = {m: from_run(r) for m, r in runs.items()}
    if len(per) == 1:
        data = next(iter(per.values()))
        data.selections.clear()
    else:
        examples = list(dataset.examples)
        table = pa.table({"row": pa.array([ex.row for ex in examples], pa.int64()), "id": [ex.id for ex in examples]})
        data = ReportData(
            table=table, examples=examples, n_read=dataset.n_read, rejects=_reject_counts(dataset.rejects),
            notes=Counter(dataset.notes), sources={"data": str(dataset.path)},
        )  # fmt: skip
        for method, d in per.items():
            renamed: dict[str, str] = {}
            for name in d.table.column_names:
                if name in BOOKKEEPING:
                    continue
                col = d.table.column(name)
                if name in data.table.column_names and not data.table.column(name).equals(col):
                    renamed[name] = f"{method}.{name}"
                elif name in data.table.column_names:
                    continue
                data.table = data.table.append_column(renamed.get(name, name), col)
            for name, cuts in cutoffs(d).items():
                col = renamed.get(name, name)
                data.cuts.setdefault(col, []).extend(Cut(col, c.value, f"{method}: {c.label}") for c in cuts)
    data.title = title or f"instructsift compare: {Path(dataset.path).name}"
    for name, positions in picks.items():
        if positions is not None and len(positions) < data.n:  # not the full data
            mask = np.zeros(data.n, dtype=bool)
            mask[np.asarray(positions, dtype=np.int64)] = True
            data.selections[name] = mask
    _add_extras(data, compare=compare)
    return data


def _add_extras(data: ReportData, compare: Path | None = None, rule: Path | None = None, curve: Path | None = None,
                mining: Path | None = None) -> None:  # fmt: skip
    if compare is not None:
        data.compare = read_compare(Path(compare))
        data.sources["compare"] = str(data.compare.path)
    if mining is not None:  # a mine() folder; --rule and --curve, when given too, take precedence
        m = read_mining(Path(mining))
        data.rule, data.curve, data.experiments = m.rule, m.curve, m.experiments
        data.sources["mining"] = str(mining)
    if rule is not None:
        data.rule = read_rule(Path(rule))
        data.sources["rule"] = str(rule)
    if curve is not None:
        data.curve = read_curve(Path(curve))
        data.sources["curve"] = str(curve)


def _read_table(path: Path) -> Any:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..data.errors import MissingFileError

    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (the score table)")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        elif path.suffix == ".jsonl":
            table = pa.Table.from_pylist([json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x])
        else:
            raise UserError(f"{path}: a score table is .parquet or .jsonl (from `instructsift score`)")
    except (pa.ArrowInvalid, OSError, ValueError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"{path}: not a readable score table ({str(e).splitlines()[0]})") from None
    for name in ("row", "id"):
        if name not in table.column_names:
            raise UserError(f"{path}: no `{name}` column: not a score table from `instructsift score`")
    return table


def _apply_dropped(out: ReportData, path: Path) -> None:
    rows = out.table.column("row").to_pylist()
    ids = out.table.column("id").to_pylist()
    at = {r: i for i, r in enumerate(rows)}
    kept = np.ones(out.n, dtype=bool)
    reasons: list[dict[str, Any] | None] = [None] * out.n
    for d in read_dropped(path):
        i = at.get(d["row"])
        if i is None or (d["id"] is not None and d["id"] != ids[i]):
            raise UserError(
                f"{path}, line {d['line']}: row {d['row']} (id {d['id']!r}) is not in the score table "
                f"{out.sources['scores']}: the dropped file is from another run"
            )
        kept[i] = False
        reasons[i] = {"step": d["step"], "code": d["code"], "detail": d["detail"]}
    out.kept, out.reasons = kept, reasons
    out.sources["dropped"] = str(path)


def _selection_mask(out: ReportData, path: Path) -> np.ndarray:
    """Which score-table rows a written selection holds: by id, then (for a duplicate whose id was renumbered)
    by content."""
    from ..api import read

    picked = read(path, on_error="fail")
    ids = {v: i for i, v in enumerate(out.table.column("id").to_pylist())}
    by_hash: dict[str, list[int]] = {}
    if out.examples is not None:
        for i, ex in enumerate(out.examples):
            by_hash.setdefault(ex.content_hash, []).append(i)
    elif "content_hash" in out.table.column_names:
        for i, h in enumerate(out.table.column("content_hash").to_pylist()):
            by_hash.setdefault(h, []).append(i)
    mask = np.zeros(out.n, dtype=bool)
    for ex in picked.examples:
        i = ids.get(ex.id)
        if i is None or mask[i]:
            i = next((j for j in by_hash.get(ex.content_hash, []) if not mask[j]), None)
        if i is None:
            where = f", line {ex.line}" if ex.line else f", row {ex.row}"
            raise UserError(
                f"{path}{where}: the record {ex.id!r} is not in the score table {out.sources['scores']}: "
                "a selection must come from the same data set"
            )
        mask[i] = True
    return mask


def _unique(name: str, taken: dict[str, Any]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name} ({k})", k + 1
    return out


def _reject_counts(rejects: list[Any], limit: int = 80) -> Counter[str]:
    """Rejected rows by reason (`field: reason`, cut to `limit` characters)."""
    out: Counter[str] = Counter()
    for r in rejects:
        text = f"{r.field}: {r.reason}" if r.field else r.reason
        out[text if len(text) <= limit else text[: limit - 1] + "…"] += 1
    return out
