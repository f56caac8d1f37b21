"""The page: sections filled from `ReportData`, figures as plotly divs, plotly.js inlined once, written
atomically. Nothing on the page loads from the network, so it opens from disk on an air-gapped machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import UserError, literal
from ..errors import MissingExtraError, require
from . import figures
from .data import ACCOUNTING, Cut, ReportData, cutoffs
from .embedmap import MapPoints, map_points

SHORT, FULL = 200, 4000  # characters shown, and kept behind "more", per text cell
PER_EDGE = 3  # examples at the top, at the bottom and around the cut-off, per score column
CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (name, div html)
    tables: list[dict[str, Any]] = field(default_factory=list)  # {caption, head, rows, name}
    parts: list[dict[str, Any]] = field(default_factory=list)  # sub-sections: {title, figures, tables}


def plotly_missing() -> str | None:
    """Why the report cannot be made here (plotly not installed), or None."""
    try:
        for module in ("plotly", "jinja2"):
            require(module, "the report", extra="report")
    except MissingExtraError as e:
        return str(e)
    return None


class _Figures:
    """Turns figures into divs with stable ids."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, name: str, fig: Any) -> tuple[str, str]:
        import plotly.io as pio

        self.count += 1
        html = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config=CONFIG)
        return name, html


def build(
    data: ReportData, *, max_points: int = 2000, color_by: str | None = None, seed: int = 0, bookkeeping: bool = False
) -> str:
    """The whole page as one HTML string. Histograms, correlations and the map show the scores the selection
    decided on (`decided`); `bookkeeping` adds every other numeric column (token and turn counts, ...)."""
    import jinja2
    from plotly.offline import get_plotlyjs

    figs = _Figures()
    cuts = {**cutoffs(data), **data.cuts}
    every = sorted(data.score_columns(), key=lambda n: n not in cuts)  # the columns that selected first
    if color_by is not None and color_by not in every:
        known = literal(f"no such score column (columns: {', '.join(every) or 'none'})")
        raise UserError("{color_by}: " + known, color_by=color_by)
    names = every if bookkeeping else decided(every, cuts)
    if color_by is not None and color_by not in names:
        names.append(color_by)
    results_only = data.n == 0 and (data.compare or data.rule or data.curve)  # e.g. `compare --report`
    sections = [] if results_only else [
        _counts(data, figs),
        _scores(data, names, cuts, figs),
        _correlations(data, names, figs),
        _overlap(data, figs),
        _map(data, names, cuts, figs, max_points, color_by, seed),
    ]  # fmt: skip
    hidden = [n for n in every if n not in names]
    if hidden and sections:
        sections[1].notes.append(
            f"Drawn: the columns the selection decided on. Not drawn: {', '.join(hidden)} "
            "(instructsift report --bookkeeping draws them)."
        )
    if data.compare is not None:
        sections.append(_compare(data, figs))
    if data.rule is not None or data.curve is not None:
        sections.append(_mining(data, figs))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        title=data.title, sources=data.sources, sections=sections, plotlyjs=get_plotlyjs(), rows=data.n
    )


def decided(names: list[str], cuts: dict[str, list[Cut]]) -> list[str]:
    """The score columns the selection decided on (those with a threshold or cut-off); without any, every
    column but the bookkeeping that scorers write beside their scores (`ACCOUNTING`)."""
    return [n for n in names if n in cuts] or [n for n in names if n.split(".")[-1] not in ACCOUNTING]


def write(data: ReportData, path: str | os.PathLike, **options: Any) -> Path:
    from ..atomic import write_text

    write_text(path, build(data, **options))
    return Path(path)


# -- sections ----------------------------------------------------------------------------------------
def _counts(data: ReportData, figs: _Figures) -> Section:
    from collections import Counter

    from ..accounting import unscored_mask

    s = Section("counts", "Counts", "Every input row is read and kept, dropped with a reason, or rejected.")
    unscored = sum(unscored_mask(data.table))
    dropped: Counter[str] = Counter()
    steps: dict[str, str] = {}
    if data.reasons is not None:
        for r in data.reasons:
            if r:
                dropped[r["code"]] += 1
                steps.setdefault(r["code"], r.get("step") or "")
    kept = int(data.kept.sum()) if data.kept is not None else None
    rows: list[list[Any]] = []
    rows.append(["read", "", _n(data.n_read) if data.n_read is not None else "— (no --data)"])
    rows.append(["rejected", "", _n(sum(data.rejects.values()))])
    rows += [["", f"rejected: {why}", _n(n)] for why, n in data.rejects.most_common()]
    rows.append(["in the score table", "", _n(data.n)])
    rows.append(["", "with every score", _n(data.n - unscored)])
    rows.append(["", "missing a score", _n(unscored)])
    if kept is not None:
        rows.append(["kept", "", _n(kept)])
        rows.append(["dropped", "", _n(data.n - kept)])
        rows += [
            ["", f"{code}" + (f" (step {steps[code]})" if steps[code] else ""), _n(n)]
            for code, n in dropped.most_common()
        ]
    elif len(data.selections) > 1:
        s.notes.append(f"{len(data.selections)} selections: what each kept is under Overlap between selections.")
    else:
        s.notes.append("No selection is known (give --dropped or --selection): kept and dropped are not shown.")
    rows += [["note", why, _n(n)] for why, n in data.notes.most_common()]
    s.tables.append({"name": "counts", "caption": "rows", "head": ["outcome", "reason", "rows"], "rows": rows})
    s.figures.append(figs.div("counts", figures.counts_bar(kept, dropped, data.rejects, data.n)))
    return s


def _scores(data: ReportData, names: list[str], cuts: dict[str, list[Cut]], figs: _Figures) -> Section:
    s = Section(
        "scores",
        "Scores",
        "Each score column: its distribution (binned; kept and dropped stacked) with the selection's thresholds "
        "and cut-offs as dashed lines, then the rows at the top, at the bottom and around the cut-off.",
    )
    if not names:
        s.notes.append("The score table has no numeric score column.")
    if data.examples is None:
        s.notes.append("No data was given (--data): the examples show ids, not texts.")
    for j, name in enumerate(names):
        values = data.values(name)
        fig = figs.div(f"hist-{j}", figures.histogram(name, values, data.kept, cuts.get(name, [])))
        s.parts.append(
            {
                "id": f"score-{j}",
                "title": name,
                "figures": [fig],
                "tables": [_edges(data, name, values, cuts.get(name))],
            }
        )
    return s


def _edges(data: ReportData, name: str, values: np.ndarray, cuts: list[Cut] | None) -> dict[str, Any]:
    """Rows at the top, the bottom and around the cut-off (or the median, without one) of a column."""
    has = np.flatnonzero(np.isfinite(values))
    order = has[np.lexsort((has, -values[has]))]  # highest first, ties by row
    pivot = cuts[0].value if cuts else (float(np.median(values[has])) if len(has) else 0.0)
    near = has[np.lexsort((has, np.abs(values[has] - pivot)))][:PER_EDGE]
    near = near[np.argsort(-values[near], kind="stable")]
    around = f"around the cut-off ({cuts[0].label})" if cuts else f"around the median ({pivot:.4g})"
    groups = [("top", order[:PER_EDGE]), ("bottom", order[::-1][:PER_EDGE]), (around, near)]
    ids = data.table.column("id")
    rows = []
    for label, picked in groups:
        for i in picked.tolist():
            text = data.text(i)
            rows.append(
                [
                    label,
                    str(ids[i].as_py()),
                    f"{values[i]:.4g}",
                    data.reason_text(i) or "—",
                    _cell(text[0]) if text else "—",
                    _cell(text[1]) if text else "—",
                ]
            )
    head = ["where", "id", name, "outcome", "instruction", "answer"]
    return {"name": f"examples-{name}", "caption": f"examples by {name}", "head": head, "rows": rows, "texts": True}


def _cell(text: str) -> dict[str, str]:
    """A text cell: the first SHORT characters, and up to FULL behind <details>."""
    if len(text) <= SHORT:
        return {"short": text, "full": ""}
    full = text if len(text) <= FULL else text[:FULL] + f"… ({len(text) - FULL:,} more characters not shown)"
    return {"short": text[:SHORT] + "…", "full": full}


def _correlations(data: ReportData, names: list[str], figs: _Figures) -> Section:
    s = Section(
        "correlations",
        "Correlations",
        "Spearman rank correlation between score columns over the rows that have both: near 0 means two "
        "scores disagree about which rows are best.",
    )
    varied = [n for n in names if np.nanstd(data.values(n)) > 0]
    if len(varied) < 2:
        s.notes.append("Fewer than two score columns that vary: nothing to correlate.")
        return s
    z = figures.spearman(data, varied)
    s.figures.append(
        figs.div("corr", figures.heatmap(z, varied, zmin=-1, zmax=1, colorscale="RdBu", title="Spearman ρ"))
    )
    return s


def _overlap(data: ReportData, figs: _Figures) -> Section:
    s = Section("overlap", "Overlap between selections", "Jaccard index |A ∩ B| / |A ∪ B| of every pair of selections.")
    sets = data.selections
    if len(sets) < 2:
        s.notes.append(
            "Fewer than two selections to compare: give --selection FILE for each (a `select` output), or "
            "--dropped with one --selection."
        )
        if sets:
            name, mask = next(iter(sets.items()))
            s.notes.append(f"{name}: {int(mask.sum()):,} rows.")
        return s
    names = list(sets)
    z = figures.jaccard(sets)
    s.figures.append(
        figs.div("jaccard", figures.heatmap(z, names, zmin=0, zmax=1, colorscale="Blues", title="Jaccard index"))
    )
    rows = [[n, _n(int(m.sum()))] for n, m in sets.items()]
    s.tables.append({"name": "selections", "caption": "selections", "head": ["selection", "rows"], "rows": rows})
    if len(sets) <= 4:
        s.figures.append(figs.div("upset", figures.upset(sets)))
    else:
        s.notes.append(f"{len(sets)} selections: the UpSet view is drawn for 2 to 4.")
    return s


def _map(
    data: ReportData, names: list[str], cuts: dict[str, list[Cut]], figs: _Figures, max_points: int,
    color_by: str | None, seed: int,
) -> Section:  # fmt: skip
    s = Section("map", "Embedding map")
    points = map_points(data, max_points=max_points, seed=seed)
    if not isinstance(points, MapPoints):
        s.notes.append(f"No map: {points}.")
        return s
    sampled = len(points.rows) < points.total
    s.intro = (
        f"{len(points.rows):,} of {points.total:,} rows "
        + (f"(a random sample, seed {seed}: the map draws at most {max_points:,} points)" if sampled else "(all)")
        + f", placed by {points.projection} of their embeddings ({points.source}). Colour: the score in the menu, "
        "or kept / dropped; open circles are dropped rows. Hover a point for its instruction and scores."
    )
    color_by = color_by or next(iter(cuts), None)
    s.figures.append(figs.div("map", figures.embedding_map(data, points, names, color_by, names[:6])))
    return s


def _compare(data: ReportData, figs: _Figures) -> Section:
    c = data.compare
    s = Section("compare", "Compare: fine-tuned on each selection", f"From {c.path}. Eval loss: lower is better.")
    rand = c.random_losses()
    mean = float(np.mean(rand)) if rand else None
    full = c.full_loss()
    head = ["trial", "n", "tokens", "eval loss", "Δ vs mean random", "Δ vs full", "seconds"]
    rows = []
    for t in c.trials:
        delta_r = _f(t.eval_loss - mean, "+.4f") if t.eval_loss is not None and mean is not None else ""
        delta_f = _f(t.eval_loss - full, "+.4f") if t.eval_loss is not None and full is not None else ""
        rows.append(
            [t.name, _f(t.n, ",.0f"), _f(t.tokens, ",.0f"), _f(t.eval_loss, ".4f"), delta_r, delta_f,
             _f(t.seconds, ",.0f")]
        )  # fmt: skip
    if rand:
        s.notes.append(f"Random: {len(rand)} trials, eval loss {min(rand):.4f} to {max(rand):.4f} (the grey band).")
    s.tables.append({"name": "compare", "caption": "trials", "head": head, "rows": rows})
    s.figures.append(figs.div("compare", figures.compare_plot(c.trials, rand, full)))
    return s


def _mining(data: ReportData, figs: _Figures) -> Section:
    s = Section("mining", "InstructMining")
    if data.rule is not None:
        r = data.rule
        fit = ", ".join(
            x for x in (
                f"R² {r.r2:.3f}" if r.r2 is not None else "", f"adjusted R² {r.r2_adj:.3f}" if r.r2_adj is not None else "",
                f"leave-one-out R² {r.loo_r2:.3f}" if r.loo_r2 is not None else "",
                f"intercept {r.intercept:.4g}" if r.intercept is not None else "",
                f"{r.n_subsets} subsets" if r.n_subsets is not None else "",
            ) if x
        )  # fmt: skip
        s.intro = (
            f"The fitted rule ({r.path})" + (f" of {r.target}" if r.target else "") + (f": {fit}." if fit else ".")
        )
        if r.dropped:
            s.notes.append("Dropped before fitting: " + ", ".join(r.dropped) + ".")
        rows = [
            [c["name"], _f(c["coef"], ".4g"), _f(c["std_err"], ".3g"), _f(c["p_value"], ".3g")] for c in r.coefficients
        ]
        if r.intercept is not None:
            rows.append(["(intercept)", _f(r.intercept, ".4g"), _f(r.intercept_std_err, ".3g"),
                         _f(r.intercept_p_value, ".3g")])  # fmt: skip
        head = ["indicator", "coefficient", "std. error", "p-value"]
        s.tables.append({"name": "coefficients", "caption": "coefficients", "head": head, "rows": rows})
        s.figures.append(figs.div("coefficients", figures.coefficient_plot(r.coefficients)))
    if data.experiments:
        e = data.experiments
        s.notes.append(f"Experiments: {len(e)} subsets fine-tuned, eval loss {min(e):.4f} to {max(e):.4f}.")
    if data.curve is not None:
        best = f"; best k = {data.curve.best_k:g}" if data.curve.best_k is not None else ""
        s.notes.append(
            f"Subset-size curve from {data.curve.path}: eval loss against the number of top-ranked examples kept{best}."
        )
        s.figures.append(figs.div("curve", figures.curve_plot(data.curve.points, data.curve.best_k)))
    return s


def _n(value: int) -> str:
    return f"{value:,}"


def _f(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #264653; color: #fff; padding: 14px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sources { font-size: 12px; opacity: .85; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 8px 28px; z-index: 10; }
nav a { margin-right: 16px; color: #264653; text-decoration: none; font-size: 14px; }
main { padding: 8px 28px 40px; max-width: 1280px; }
section { background: #fff; border: 1px solid #e4e4e4; border-radius: 6px; margin: 18px 0; padding: 12px 20px; }
section h2 { margin: 6px 0 8px; font-size: 19px; }
h3 { font-size: 16px; margin: 22px 0 4px; font-family: ui-monospace, monospace; }
.intro, .note { font-size: 14px; color: #444; }
.note { color: #7a4b00; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 14px; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f6; }
td.text { max-width: 420px; white-space: pre-wrap; word-break: break-word; }
details summary { cursor: pointer; color: #264653; }
details .full { white-space: pre-wrap; margin-top: 4px; }
.figure { min-height: 120px; }
</style>
<script type="text/javascript">{{ plotlyjs | safe }}</script>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<div class="sources">{{ rows }} rows in the score table{% for k, v in sources.items() %} · {{ k }}: {{ v }}{% endfor %}</div>
</header>
<nav>{% for s in sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
<main>
{% macro table(t) %}
<table class="data" data-table="{{ t.name }}">
<caption style="display:none">{{ t.caption }}</caption>
<thead><tr>{% for h in t.head %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}
{% if cell is mapping %}<td class="text">{% if cell.full %}<details><summary>{{ cell.short }}</summary><div class="full">{{ cell.full }}</div></details>{% else %}{{ cell.short }}{% endif %}</td>
{% else %}<td>{{ cell }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}
</tbody>
</table>
{% endmacro %}
{% for s in sections %}
<section id="{{ s.id }}" data-section="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% if s.intro %}<p class="intro">{{ s.intro }}</p>{% endif %}
{% for n in s.notes %}<p class="note">{{ n }}</p>{% endfor %}
{% for t in s.tables %}{{ table(t) }}{% endfor %}
{% for name, div in s.figures %}<div class="figure" data-figure="{{ name }}">{{ div | safe }}</div>{% endfor %}
{% for p in s.parts %}
<div class="part" id="{{ p.id }}">
<h3>{{ p.title }}</h3>
{% for name, div in p.figures %}<div class="figure" data-figure="{{ name }}">{{ div | safe }}</div>{% endfor %}
{% for t in p.tables %}{{ table(t) }}{% endfor %}
</div>
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"""
