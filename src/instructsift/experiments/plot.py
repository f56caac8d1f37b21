"""A comparison's figures (matplotlib, `pip install 'instructsift[plot]'`): eval loss per arm (`loss.png`)
and the curve over budgets (`curve.png`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import require
from .tables import budget_text, curve_arms


def require_matplotlib() -> None:
    require("matplotlib", "the plot (loss.png; or pass --no-plot)", extra="plot")


def plot_loss(results: dict[str, Any], target: Path) -> None:
    """Eval loss per method (dots), the random picks' range (band) and mean, and the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["kind"] != "random-mean"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.6))
    colors = {"method": "tab:blue", "random": "tab:gray", "full": "tab:green"}
    for y, row in enumerate(rows):
        ax.plot(row["eval_loss"], y, "o", color=colors[row["kind"]])
    r, full = results["random"], results["full"]
    if r:
        ax.axvspan(r["min"], r["max"], color="tab:gray", alpha=0.2, label=f"random range ({r['seeds']} seeds)")
        ax.axvline(r["mean"], color="tab:gray", linestyle=":", label="random mean")
    if full is not None:
        ax.axvline(full, color="tab:green", linestyle="--", label="all data")
    ax.set_yticks(range(len(rows)), [f"{row['name']} (n={row['n']:,})" for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel("held-out answer loss (lower is better)")
    ax.set_title(f"{results['base']['model']}, budget {budget_text(results['budget'])}")
    if r or full is not None:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)


def plot_curve(results: dict[str, Any], target: Path) -> None:
    """Eval loss against the budget's trained answer tokens, a line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in curve_arms(results).items():
        if name == "full":
            ax.axhline(pts[0]["eval_loss"], color="tab:green", linestyle="--", label="all data")
            continue
        style = {"color": "tab:gray", "linestyle": ":"} if name.startswith("random") else {"linestyle": "-"}
        ax.plot([p["trained_tokens"] for p in pts], [p["eval_loss"] for p in pts], marker="o", label=name, **style)
    ax.set_xlabel("trained answer tokens per epoch")
    ax.set_ylabel("held-out answer loss (lower is better)")
    ax.set_title(f"{results['spec']['base']}, {len(results['points'])} budgets")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)
