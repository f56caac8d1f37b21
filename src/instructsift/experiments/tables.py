"""A comparison's results as Markdown: the table of one budget (`markdown`) and the curve over several
(`curve_markdown`), with the intervals said in words."""

from __future__ import annotations

from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _signed(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """The table (method, n, tokens, eval loss, Δ vs mean random with the random spread, Δ vs full, time)."""
    r, ft, b = results["random"], results["finetune"], results["budget"]
    mode = f"LoRA r{ft['lora_r']}" if ft["lora"] else "full fine-tuning"
    lr = ft["lr"] if ft["lr"] is not None else (2e-4 if ft["lora"] else 2e-5)
    m = results["machine"]
    lines = [
        "# instructsift compare",
        "",
        f"- data: `{results['data']['path']}` ({results['data']['examples']:,} examples); budget {budget_text(b)}",
        f"- held out: `{results['eval']['path']}` ({results['eval']['examples']:,} examples, "
        f"{results['eval']['answer_tokens'] or 0:,} answer tokens)",
        f"- base model: {results['base']['model']}; {mode}, {ft['epochs']:g} epochs, lr {lr:g}, batch {ft['batch_size']}"
        f"×{ft['grad_accum']}, max length {ft['max_length']}, template {ft['template']}, seed {ft['seed']}",
        f"- machine: {m['cpu']} ({m['cpus']} CPUs{', ' + m['gpu'] if m['gpu'] else ''}), torch {m['torch']}; "
        f"total {duration(results.get('seconds'))}",
    ]
    if r:
        spread = f" ± {r['sd']:.4f} (sd)" if r["sd"] is not None else ""
        lines.append(
            f"- random: mean eval loss {r['mean']:.4f}{spread} over {r['seeds']} seeds, "
            f"range {r['min']:.4f} to {r['max']:.4f}"
        )
    more = results.get("more_evals", [])
    for j, e in enumerate(more):
        lines.append(
            f"- held out {j + 2}: `{e['path']}` ({e['examples']:,} examples): columns `eval loss {j + 2}` and after"
        )
    judged = results.get("judge")
    if judged:
        lines.append(
            f"- win rate vs random: {judged['judge']}; against {judged['reference_note']}; {judged['standard']}; "
            f"greedy answers of at most {judged['generation']['max_new_tokens']} new tokens"
        )
    lines += [
        "",
        "Eval loss: mean cross-entropy per answer token on the held-out set, lower is better. Δ < 0: lower loss than "
        "the mean of the random picks (z: Δ in random standard deviations) or than all the data. Trained: the answer "
        "tokens trained per epoch (after the max-length cut; prompt tokens are not trained); steps: optimizer steps.",
        "",
        "| method | n | trained | steps | eval loss | Δ vs random | 95% CI | z | Δ vs longest | 95% CI | Δ vs full "
        "| ρ length | tokens pick/pool | select time | train+eval time |"
        + (" win rate vs random |" if judged else "")
        + "".join(f" eval loss {j + 2} | Δ vs random {j + 2} | 95% CI {j + 2} |" for j in range(len(more))),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if judged else "")
        + "---:|---:|---:|" * len(more),
    ]
    for row in results["rows"]:
        z = "-" if row["z_random"] is None else f"{row['z_random']:+.2f}"
        lines.append(
            f"| {row['name']} | {row['n']:,} | {row['trained_tokens']:,} | {row['steps']:,} | {row['eval_loss']:.4f} | "
            f"{_signed(row['delta_random'])} | {_ci(row.get('random_ci'))} | {z} | {_signed(row.get('delta_longest'))} "
            f"| {_ci(row.get('longest_ci'))} | {_signed(row['delta_full'])} | {_length(row.get('length'))} | "
            f"{duration(row['select_seconds'])} | {duration(row['train_seconds'])} |"
            + (f" {_win(row)} |" if judged else "")
            + "".join(
                f" {_loss(e['eval_loss'])} | {_signed(e['delta_random'])} | {_ci(e['random_ci'])} |"
                for e in row.get("more_evals", [])
            )  # fmt: skip
        )
    words = [_in_words(row) for row in results["rows"] if row["kind"] == "method"]
    if any(row["kind"] == "method" for row in results["rows"]):
        lines += [
            "",
            "95% CI: a paired bootstrap over the held-out examples (2,000 resamples, seed 0). ρ length: "
            "Spearman's ρ between the method's score (ranked first = higher) and trained answer tokens over the "
            "pool; tokens pick/pool: its pick's mean trained answer tokens over the pool's.",
            "",
        ]
        lines += [f"- {w}" for w in words if w]
    return "\n".join(lines) + "\n"


def _length(d: dict[str, Any] | None) -> str:
    """ρ and the pick's mean tokens over the pool's, two cells."""
    if not d:
        return "- | -"
    rho = "-" if d["rho"] is None else f"{d['rho']:+.2f}"
    ratio = "-" if not d["pool_mean_tokens"] else f"{d['pick_mean_tokens'] / d['pool_mean_tokens']:.2f}x"
    return f"{rho} | {ratio}"


def _loss(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _ci(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


def _in_words(row: dict[str, Any]) -> str:
    """What a method's intervals say, in words."""
    said = []
    for what, delta, ci in (("random", row["delta_random"], row.get("random_ci")),
                            ("longest", row.get("delta_longest"), row.get("longest_ci"))):  # fmt: skip
        if ci is None:
            continue
        if ci[0] <= 0 <= ci[1]:
            said.append(f"no difference from {what} shown (the interval includes zero)")
        else:
            said.append(f"{'lower' if delta < 0 else 'higher'} loss than {what}")
    d = row.get("length") or {}
    if d.get("length_filter"):
        said.append(f"mostly a length filter on this data (ρ = {d['rho']:.2f} between {d['score']} and answer tokens)")
    return f"{row['name']}: {'; '.join(said)}" if said else ""


def budget_text(b: dict[str, Any]) -> str:
    if b.get("tokens") is not None:
        return f"{b['tokens']:,} trained answer tokens per pick ({100 * b['tokens'] / max(b['of_tokens'], 1):.1f}%)"
    return f"{b['examples']:,} examples ({100 * b['examples'] / b['of']:.1f}%)"


def _win(row: dict[str, Any]) -> str:
    return "-" if row.get("win_rate") is None else f"{row['win_rate']:.3f} (n={row['win_n']})"


def curve_arms(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each arm's points along the budgets: the methods, the mean random pick and all the data."""
    arms: dict[str, list[dict[str, Any]]] = {}
    for p in results["points"]:
        for row in p["rows"]:
            if row["kind"] == "random":
                continue
            name = "random (mean)" if row["kind"] == "random-mean" else row["name"]
            arms.setdefault(name, []).append({"given": p["given"], **row})
    return arms


def curve_markdown(results: dict[str, Any]) -> str:
    """Eval loss per arm (rows) and budget (columns), with each pick's n and trained tokens."""
    budgets = [p["given"] for p in results["points"]]
    unit = "examples" if results["by"] == "budget" else "trained answer tokens"
    lines = [
        "# instructsift compare: a curve over budgets",
        "",
        f"Budgets in {unit}: {', '.join(map(str, budgets))}; each budget's full table is in its `budget-*/` folder.",
        "Cells: eval loss (n, trained answer tokens); lower is better.",
        "",
        "| arm | " + " | ".join(str(b) for b in budgets) + " |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name, pts in curve_arms(results).items():
        at = {p["given"]: p for p in pts}
        cells = [
            f"{at[b]['eval_loss']:.4f} ({at[b]['n']:,}, {at[b]['trained_tokens']:,})" if b in at else "-"
            for b in budgets
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
