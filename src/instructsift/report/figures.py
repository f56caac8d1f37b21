"""The report's plots, as plotly figures. Every figure carries summaries, never one mark per row, except
the map, which draws a bounded sample: histograms are binned here, counts are counted here."""

from __future__ import annotations

import html
import itertools
from collections import Counter
from typing import Any

import numpy as np

from .data import Cut, ReportData
from .embedmap import MapPoints

KEPT, DROPPED, REJECTED, NEUTRAL = "#2a9d8f", "#e76f51", "#9b2226", "#577590"
BINS = 40
LABEL_STEP = 0.09  # of the plot's height, between the rows of cut-off labels
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=40, b=50), height=340)


def _go() -> Any:
    import plotly.graph_objects as go

    return go


# -- counts --------------------------------------------------------------------------------------------
def counts_bar(kept: int | None, dropped: Counter[str], rejected: Counter[str], scored: int) -> Any:
    """One horizontal bar per outcome: kept, each drop reason, each reject reason."""
    go = _go()
    labels, values, colours = [], [], []
    if kept is None:
        labels.append("scored (no selection given)")
        values.append(scored)
        colours.append(NEUTRAL)
    else:
        labels.append("kept")
        values.append(kept)
        colours.append(KEPT)
    for code, n in dropped.most_common():
        labels.append(f"dropped: {code}")
        values.append(n)
        colours.append(DROPPED)
    for why, n in rejected.most_common():
        labels.append(f"rejected: {why}")
        values.append(n)
        colours.append(REJECTED)
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=colours, text=values, textposition="auto"))
    fig.update_layout(**{**LAYOUT, "height": 120 + 28 * len(labels)}, yaxis=dict(autorange="reversed"))
    fig.update_xaxes(title_text="rows")
    return fig


# -- one score -----------------------------------------------------------------------------------------
def histogram(name: str, values: np.ndarray, kept: np.ndarray | None, cuts: list[Cut]) -> Any:
    """Binned counts of a score (stacked kept / dropped when a selection is known), with its cut-offs."""
    go = _go()
    finite = np.isfinite(values)
    x = values[finite]
    fig = go.Figure()
    if len(x):
        lo, hi = float(x.min()), float(x.max())
        integer = bool(np.all(np.mod(x, 1) == 0)) and hi - lo < BINS
        edges = np.arange(lo - 0.5, hi + 1.5) if integer else np.histogram_bin_edges(x, bins=BINS)
        centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        groups = [("all rows", finite, NEUTRAL)] if kept is None else [
            ("kept", finite & kept, KEPT), ("dropped", finite & ~kept, DROPPED)
        ]  # fmt: skip
        for label, mask, colour in groups:
            counts, _ = np.histogram(values[mask], bins=edges)
            fig.add_trace(
                go.Bar(
                    x=centres,
                    y=counts,
                    width=widths,
                    name=label,
                    marker_color=colour,
                    hovertemplate=f"{html.escape(name)} %{{x:.4g}}<br>{label}: %{{y}}<extra></extra>",
                )
            )
    # Each cut-off's label on a row of its own, left to right by value, so that two close lines (a
    # threshold and a top-k cut-off) never draw one label over the other.
    middle = float(np.mean([x.min(), x.max()])) if len(x) else 0.0
    for j, cut in enumerate(sorted(cuts, key=lambda c: c.value)):
        fig.add_vline(x=cut.value, line_dash="dash", line_color="#222")
        fig.add_annotation(
            x=cut.value,
            xref="x",
            y=1 - LABEL_STEP * j,
            yref="paper",
            text=html.escape(cut.label),
            showarrow=False,
            xanchor="left" if cut.value <= middle else "right",  # into the plot, not off its edge
            yanchor="top",
            bgcolor="rgba(255,255,255,0.8)",
        )
    missing = int((~finite).sum())
    title = f"{html.escape(name)}" + (
        f" ({missing} row{'s' * (missing != 1)} without a value, not drawn)" if missing else ""
    )
    fig.update_layout(**LAYOUT, barmode="stack", bargap=0.02, title=dict(text=title, font_size=14))
    fig.update_xaxes(title_text=html.escape(name))
    fig.update_yaxes(title_text="rows")
    return fig


# -- correlations --------------------------------------------------------------------------------------
def spearman(data: ReportData, names: list[str]) -> np.ndarray:
    """Spearman rank correlation of every pair of columns over the rows where both have a value."""
    from scipy.stats import rankdata

    cols = [data.values(n) for n in names]
    k = len(names)
    out = np.full((k, k), np.nan)
    for i, j in itertools.combinations_with_replacement(range(k), 2):
        both = np.isfinite(cols[i]) & np.isfinite(cols[j])
        if both.sum() < 3:
            continue
        a, b = rankdata(cols[i][both]), rankdata(cols[j][both])
        if a.std() == 0 or b.std() == 0:
            continue
        out[i, j] = out[j, i] = float(np.corrcoef(a, b)[0, 1])
    return out


def heatmap(z: np.ndarray, labels: list[str], *, zmin: float, zmax: float, colorscale: str, title: str) -> Any:
    go = _go()
    shown = [html.escape(x) for x in labels]
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.isnan(z), None, z).tolist(),
            x=shown,
            y=shown,
            zmin=zmin,
            zmax=zmax,
            colorscale=colorscale,
            text=text,
            texttemplate="%{text}",
            hovertemplate="%{y} × %{x}: %{text}<extra></extra>",
        )
    )
    side = max(320, 90 + 42 * len(labels))
    fig.update_layout(**{**LAYOUT, "height": side}, title=dict(text=title, font_size=14))
    fig.update_yaxes(autorange="reversed")
    return fig


# -- overlap -------------------------------------------------------------------------------------------
def jaccard(sets: dict[str, np.ndarray]) -> np.ndarray:
    names = list(sets)
    out = np.ones((len(names), len(names)))
    for i, j in itertools.combinations(range(len(names)), 2):
        a, b = sets[names[i]], sets[names[j]]
        union = int((a | b).sum())
        out[i, j] = out[j, i] = (int((a & b).sum()) / union) if union else np.nan
    return out


def upset(sets: dict[str, np.ndarray]) -> Any:
    """UpSet-style: a bar per exclusive intersection (rows in exactly these selections), the members as
    dots below."""
    from plotly.subplots import make_subplots

    go = _go()
    names = list(sets)
    masks = np.column_stack([sets[n] for n in names])
    combos: list[tuple[tuple[int, ...], int]] = []
    for r in range(1, len(names) + 1):
        for combo in itertools.combinations(range(len(names)), r):
            want = np.zeros(len(names), dtype=bool)
            want[list(combo)] = True
            n = int(np.all(masks == want, axis=1).sum())
            if n:
                combos.append((combo, n))
    combos.sort(key=lambda c: (-c[1], c[0]))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.04)
    xs = list(range(len(combos)))
    labels = [" ∩ ".join(html.escape(names[i]) for i in combo) for combo, _ in combos]
    fig.add_trace(
        go.Bar(
            x=xs,
            y=[n for _, n in combos],
            marker_color=NEUTRAL,
            text=[n for _, n in combos],
            textposition="outside",
            hovertext=labels,
            hovertemplate="only %{hovertext}: %{y} rows<extra></extra>",
        ),
        row=1,
        col=1,
    )
    for x, (combo, _) in enumerate(combos):
        fig.add_trace(
            go.Scatter(
                x=[x] * len(names),
                y=list(range(len(names))),
                mode="markers",
                marker=dict(size=12, color=["#222" if i in combo else "#ddd" for i in range(len(names))]),
                hoverinfo="skip",
            ),
            row=2,
            col=1,
        )
        if len(combo) > 1:
            fig.add_trace(
                go.Scatter(
                    x=[x, x],
                    y=[min(combo), max(combo)],
                    mode="lines",
                    line=dict(color="#222", width=2),
                    hoverinfo="skip",
                ),  # fmt: skip
                row=2,
                col=1,
            )
    fig.update_layout(**{**LAYOUT, "height": 300 + 30 * len(names)}, showlegend=False)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(showticklabels=False, row=2, col=1)
    fig.update_yaxes(title_text="rows in exactly these", row=1, col=1)
    fig.update_yaxes(
        tickvals=list(range(len(names))), ticktext=[html.escape(n) for n in names], autorange="reversed", row=2, col=1
    )
    return fig


# -- the map -------------------------------------------------------------------------------------------
def embedding_map(
    data: ReportData, points: MapPoints, names: list[str], color_by: str | None, hover_columns: list[str]
) -> Any:
    """The sampled rows in 2-D, coloured by a score (`names` in the menu; also kept / dropped); hovering a
    point shows its id, instruction, scores (`hover_columns`) and outcome."""
    go = _go()
    rows = points.rows
    color_by = color_by if color_by in names else (names[0] if names else None)
    groups = (
        [("rows", np.ones(len(rows), dtype=bool), NEUTRAL, "circle")]
        if data.kept is None
        else [("kept", data.kept[rows], KEPT, "circle"), ("dropped", ~data.kept[rows], DROPPED, "circle-open")]
    )
    hover = [_hover(data, int(i), hover_columns) for i in rows]
    fig = go.Figure()
    for label, mask, _, symbol in groups:
        fig.add_trace(
            go.Scatter(
                x=points.xy[mask, 0],
                y=points.xy[mask, 1],
                mode="markers",
                name=label,
                marker=dict(size=8, symbol=symbol, line=dict(width=1.5 if symbol.endswith("open") else 0.5)),
                hovertext=[h for h, m in zip(hover, mask, strict=True) if m],
                hoverinfo="text",
            )
        )
    menu = []
    for name in names:
        v = data.values(name)[rows]
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        colours = [np.where(np.isfinite(v[m]), v[m], None).tolist() for _, m, _, _ in groups]
        style = {
            "marker.color": colours,
            "marker.colorscale": ["Viridis"] * len(groups),
            "marker.cmin": [lo] * len(groups),
            "marker.cmax": [hi] * len(groups),
            "marker.showscale": [True] + [False] * (len(groups) - 1),
            "marker.colorbar.title.text": [html.escape(name)] * len(groups),
        }
        menu.append(dict(label=html.escape(name), method="restyle", args=[style]))
    plain = {"marker.color": [c for _, _, c, _ in groups], "marker.showscale": [False] * len(groups)}
    menu.append(dict(label="kept / dropped" if data.kept is not None else "one colour", method="restyle", args=[plain]))
    start = names.index(color_by) if color_by else len(menu) - 1
    fig.plotly_restyle(menu[start]["args"][0], trace_indexes=list(range(len(groups))))
    fig.update_layout(
        **{**LAYOUT, "height": 560},
        updatemenus=[dict(buttons=menu, active=start, x=0, xanchor="left", y=1.12, yanchor="top", direction="down")],
        legend=dict(orientation="h", x=1, xanchor="right", y=1.08),
        xaxis=dict(title_text=f"{points.projection} 1", zeroline=False),
        yaxis=dict(title_text=f"{points.projection} 2", zeroline=False),
    )
    return fig


def _hover(data: ReportData, i: int, columns: list[str]) -> str:
    parts = [f"<b>{html.escape(str(data.table.column('id')[i].as_py()))}</b>"]
    text = data.text(i)
    if text is not None:
        parts.append(html.escape(_wrap(_cut(text[0], 160))))
    for name in columns:
        v = data.table.column(name)[i].as_py()
        parts.append(f"{html.escape(name)}: " + ("—" if v is None else f"{v:.4g}"))
    outcome = data.reason_text(i)
    if outcome:
        parts.append(html.escape(_cut(outcome, 100)))
    return "<br>".join(parts)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) if text else ""


# -- compare and InstructMining ------------------------------------------------------------------------
def compare_plot(trials: list[Any], random_losses: list[float], full_loss: float | None) -> Any:
    """Eval loss per trial; the random trials' range as a band with its mean, the full data as a line."""
    go = _go()
    fig = go.Figure()
    shown = [t for t in trials if t.eval_loss is not None]
    fig.add_trace(
        go.Scatter(
            x=[html.escape(t.name) for t in shown],
            y=[t.eval_loss for t in shown],
            mode="markers",
            marker=dict(size=12, color=[NEUTRAL if t.group != "random" else "#aaa" for t in shown]),
            hovertemplate="%{x}: eval loss %{y:.4f}<extra></extra>",
            name="eval loss",
        )
    )
    if random_losses:
        lo, hi, mean = min(random_losses), max(random_losses), float(np.mean(random_losses))
        fig.add_hrect(y0=lo, y1=hi, fillcolor="#aaa", opacity=0.25, line_width=0)
        fig.add_hline(y=mean, line_dash="dot", line_color="#777", annotation_text=f"random mean {mean:.4f}")
    if full_loss is not None:
        fig.add_hline(y=full_loss, line_dash="dash", line_color="#222", annotation_text=f"full data {full_loss:.4f}")
    fig.update_layout(**LAYOUT, showlegend=False)
    fig.update_yaxes(title_text="eval loss (lower is better)")
    return fig


def coefficient_plot(rows: list[dict[str, Any]]) -> Any:
    go = _go()
    shown = [r for r in rows if r["coef"] is not None]
    fig = go.Figure(
        go.Bar(
            x=[r["coef"] for r in shown],
            y=[html.escape(r["name"]) for r in shown],
            orientation="h",
            marker_color=[KEPT if r["coef"] < 0 else DROPPED for r in shown],
            error_x=dict(type="data", array=[r["std_err"] or 0 for r in shown], visible=True),
            hovertemplate="%{y}: %{x:.4g}<extra></extra>",
        )
    )
    fig.update_layout(**{**LAYOUT, "height": 140 + 30 * len(shown)})
    fig.update_xaxes(title_text="coefficient on log eval loss (negative: the indicator helps)")
    return fig


def curve_plot(points: list[dict[str, Any]], best_k: float | None) -> Any:
    go = _go()
    fig = go.Figure()
    for kind in dict.fromkeys(p["kind"] for p in points):
        mine = [p for p in points if p["kind"] == kind]
        fig.add_trace(
            go.Scatter(
                x=[p["k"] for p in mine],
                y=[p["eval_loss"] for p in mine],
                mode="lines+markers" if kind != "search" else "markers",
                name=html.escape(kind),
                hovertemplate="k %{x}: eval loss %{y:.4f}<extra></extra>",
            )
        )
    if best_k is not None:
        fig.add_vline(x=best_k, line_dash="dash", annotation_text=f"best k = {best_k:g}")
    fig.update_layout(**LAYOUT)
    fig.update_xaxes(type="log", title_text="examples selected (k)")
    fig.update_yaxes(title_text="eval loss")
    return fig
