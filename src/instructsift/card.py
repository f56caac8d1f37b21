"""A data set card for a selection (README.md in the hub's card format), and the upload to the hub.

The card is what the hub shows and what `load_dataset` reads: a YAML header with the `configs:` block
naming the data files, then the method, the recipe that made the selection, the counts (read, kept,
dropped by each step, rejected), the kept rows' score summaries and the source. `push` uploads the written
selection with `datasets.Dataset.push_to_hub` (the library's own upload, with `HF_TOKEN`), then the card.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .data.errors import OptionError

KEY_COLUMNS = ("row", "id", "content_hash")


def _data_files(output: Path, card: Path) -> str:
    """The data files of the selection, as the card's `configs:` block names them (relative to the card)."""
    if output.is_dir():
        return "data-*.arrow"
    return output.resolve().relative_to(card.resolve().parent).as_posix()


def score_summaries(table: Any, kept: list[int]) -> list[dict[str, Any]]:
    """count, mean, min, median, max of each numeric score column over the kept rows (nulls and NaN left out)."""
    import numpy as np
    import pyarrow as pa

    out = []
    part = table.take(pa.array(kept, pa.int64())) if kept else table.slice(0, 0)
    for f in table.schema:
        if f.name in KEY_COLUMNS or not (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)):
            continue
        values = np.array([v for v in part.column(f.name).to_pylist() if v is not None], dtype=float)
        values = values[~np.isnan(values)]
        row: dict[str, Any] = {"column": f.name, "count": int(values.size)}
        if values.size:
            row |= {k: float(fn(values)) for k, fn in (("mean", np.mean), ("min", np.min), ("median", np.median),
                                                        ("max", np.max))}  # fmt: skip
        out.append(row)
    return out


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else str(x)


def card_text(result: Any, output: Path, card: Path, data_files: str | None = None) -> str:
    """The card of a run's selection written at `output` (`result`: a `pipeline.RunResult`)."""
    recipe, picked = result.recipe, result.picked
    s = picked.summary()
    header = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": data_files or _data_files(output, card)}]}],
        "tags": ["instructsift", "data-selection"],
        "task_categories": ["text-generation"],
    }  # fmt: skip
    fmt = recipe.settings.to or picked.dataset.format
    methods = recipe.source.removeprefix("--method ") if recipe.source.startswith("--method") else None
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "", f"# {output.name}", ""]
    lines += [
        "Instruction-tuning examples selected by [instructsift](https://pypi.org/project/instructsift/)"
        + (f" with the `{methods}` method" if methods else f" with the recipe `{recipe.source}`")
        + f", written in the {fmt} format.",
        "",
        "## Source",
        "",
        f"{picked.dataset.origin or picked.dataset.path}",
        "",
        "## Counts",
        "",
        "| read | kept | dropped | rejected |",
        "|---:|---:|---:|---:|",
        f"| {s['read']} | {s['kept']} | {s['dropped']} | {s['rejected']} |",
        "",
    ]
    if s["dropped_by"]:
        lines += ["Dropped by: " + ", ".join(f"{k}: {v}" for k, v in s["dropped_by"].items()) + ".", ""]
    if s["shares"]:
        lines += ["Sizes: " + "; ".join(s["shares"]) + ".", ""]
    summaries = score_summaries(result.table, picked.selection.kept.tolist())
    if summaries:
        lines += ["## Scores of the kept rows", "", "| column | count | mean | min | median | max |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in summaries:
            lines.append(
                f"| {r['column']} | {r['count']} | "
                + " | ".join(_num(r.get(k, "-")) for k in ("mean", "min", "median", "max"))
                + " |"
            )
        lines.append("")
    lines += ["## Recipe", "", "Run it again with `instructsift run recipe.yaml`:", "", "```yaml",
              recipe.to_yaml().rstrip(), "```", ""]  # fmt: skip
    return "\n".join(lines)


def write_card(result: Any, output: Path, card: Path) -> None:
    from .atomic import write_text

    write_text(card, card_text(result, output, card))


def check_push(repo: str, output: Path | None) -> None:
    """Refuse `--push-to-hub`, before any work, without a token, a repository id, or an output to upload."""
    from .data.errors import require
    from .data.hub import hub_id

    hub = require("huggingface_hub", "--push-to-hub", extra="hf")
    if hub_id(repo) is None or repo.startswith("hf://"):
        raise OptionError(f"--push-to-hub {repo!r}: expected a hub data set id, org/name")
    if output is None or str(output) == "-":
        raise OptionError("--push-to-hub uploads the written selection: give it an output file or folder (-o)")
    if not hub.get_token():
        raise OptionError(
            f"--push-to-hub {repo}: no Hugging Face token (set HF_TOKEN, or run `hf auth login`); nothing was run"
        )


def push(result: Any, output: Path, repo: str, *, private: bool = False) -> None:
    """Upload the written selection at `output` to the hub data set `repo`, then its card."""
    from .data.errors import require

    datasets = require("datasets", "--push-to-hub", extra="hf")
    hub = require("huggingface_hub", "--push-to-hub", extra="hf")
    if output.is_dir():
        ds = datasets.load_from_disk(str(output))
    else:
        kind = "parquet" if output.name.endswith(".parquet") else "json"
        ds = datasets.load_dataset(kind, data_files=str(output), split="train")
    ds.push_to_hub(repo, private=private)
    text = card_text(result, output, output.parent / "README.md", data_files="data/train-*")
    hub.HfApi().upload_file(
        path_or_fileobj=text.encode("utf-8"), path_in_repo="README.md", repo_id=repo, repo_type="dataset"
    )
