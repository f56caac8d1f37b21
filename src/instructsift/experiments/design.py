"""InstructMining's experiment design: training subsets that mix sources of assumed quality at random
proportions, and a held-out evaluation set whose instructions never appear in any training subset.

Cao et al., 2023 (arXiv:2307.06290) fine-tune one base model on 129 subsets of known make-up and fit
log(eval loss) on the subsets' mean indicators. The sources are files the caller names (`NAME=FILE`, or a
FILE named by its stem): for instance answer files from several generators to the same instructions (the
AlpacaEval answers of gpt4, claude-2, text_davinci_003, alpaca-7b and falcon-7b-instruct to 805
instructions) give subsets of graded quality when mixed, and other instruction data sets add variety. The
held-out set is a random part of one source (`eval_source`: the "good answers"); its instructions (compared
after lower-casing and collapsing spaces) are removed from every source before subsets are drawn.

Each subset draws source proportions from a flat Dirichlet and its rows, without replacement, from each
source's pool. The design is written as a pool (alpaca JSON with a `source` field), an eval file and a
design JSON that names every subset's pool positions; a runner's `loss_of(positions)` evaluates each.

    instructsift design gpt4=answers/gpt4.json weak=answers/falcon.json dolly.json --eval-source gpt4 -o out/design
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _alpaca(rec: Mapping[str, Any], source: str) -> dict[str, str] | None:
    """One record as an alpaca row with its source; None for a record without an instruction and answer."""
    if "conversations" in rec:  # LIMA: alternate turns, first pair only
        conv = rec["conversations"]
        if len(conv) < 2:
            return None
        return {"instruction": conv[0], "input": "", "output": conv[1], "source": source}
    instruction = rec.get("instruction")
    output = rec.get("output", rec.get("response"))
    if not instruction or not output:
        return None
    return {"instruction": instruction, "input": rec.get("input") or rec.get("context") or "", "output": output,
            "source": source}  # fmt: skip


def parse_sources(specs: Sequence[str]) -> dict[str, Path]:
    """Sources as given on the command line: `NAME=FILE`, or `FILE` (named by its stem), each name once."""
    from ..data.errors import MissingFileError, OptionError

    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        file = Path(path if sep else spec)
        name = name if sep else file.name.split(".")[0]
        if not name or (sep and not path):
            raise OptionError(f"source {spec!r}: give NAME=FILE or FILE")
        if name in out:
            raise OptionError(f"two sources are named {name!r}: give one a name (NAME=FILE)")
        if not file.is_file():
            raise MissingFileError(f"{file}: no such file (source {name!r})")
        out[name] = file
    if len(out) < 2:
        raise OptionError("a design mixes at least two sources (NAME=FILE ...)")
    return out


def _records(path: Path) -> list[Any]:
    """A JSON array, or JSON Lines, of records."""
    from ..data.errors import InputError, Reject

    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise InputError(Reject(str(path), None, None, None, f"neither a JSON array nor JSON Lines: {e}")) from None


def load_sources(files: Mapping[str, str | Path]) -> dict[str, list[dict[str, str]]]:
    """Each named file's records as alpaca rows with their `source` (records without an instruction and an
    answer are left out)."""
    out: dict[str, list[dict[str, str]]] = {}
    for name, path in files.items():
        out[name] = [r for r in (_alpaca(x, name) for x in _records(Path(path))) if r]
    return out


def _draw(seed: int, instruction: str) -> str:
    """A seeded pseudo-random key of an instruction (the same for the same instruction in every source)."""
    return hashlib.sha256(f"{seed}:{normalise(instruction)}".encode()).hexdigest()


@dataclass
class Design:
    """A pool of rows, an eval set and subsets of pool positions (`subsets[i]`, with `mixes[i]` the
    number of rows from each source)."""

    pool: list[dict[str, str]]
    eval: list[dict[str, str]]
    subsets: list[list[int]]
    mixes: list[dict[str, int]]
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | Path) -> Path:
        """pool.json, eval.json and design.json in `folder` (written atomically); returns design.json."""
        from ..atomic import write_text

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "pool.json", json.dumps(self.pool, ensure_ascii=False, indent=1))
        write_text(out / "eval.json", json.dumps(self.eval, ensure_ascii=False, indent=1))
        design = {
            "pool": "pool.json",
            "eval": "eval.json",
            "settings": self.settings,
            "subsets": [{"rows": s, "mix": m} for s, m in zip(self.subsets, self.mixes, strict=True)],
        }
        write_text(out / "design.json", json.dumps(design, indent=1))
        return out / "design.json"


def mixture_design(
    sources: Mapping[str, Sequence[dict[str, str]]],
    *,
    n_subsets: int = 24,
    size: int = 200,
    held_out: int = 100,
    eval_source: str,
    alpha: float = 1.0,
    seed: int = 0,
    per_source: int | None = None,
) -> Design:
    """Draw `n_subsets` subsets of `size` rows mixing `sources` at Dirichlet(`alpha`) proportions; the
    eval set is `held_out` random rows of `eval_source`, whose instructions leave every source first.
    `per_source` keeps at most that many rows of each source in the pool (a smaller pool scores faster),
    chosen by a seeded hash of the instruction, so sources that answer the same instructions (the
    AlpacaEval files) keep the same ones."""
    if n_subsets < 1 or size < 1 or held_out < 1 or (per_source is not None and per_source < 1):
        raise ValueError("n_subsets, size, held_out and per_source must be at least 1")
    if eval_source not in sources:
        raise ValueError(f"eval_source {eval_source!r} is not a source (sources: {', '.join(sources)})")
    rng = np.random.default_rng(seed)
    ev = list(sources[eval_source])
    if held_out >= len(ev):
        raise ValueError(f"held_out {held_out} leaves no training rows of {eval_source} ({len(ev)} rows)")
    eval_rows = [ev[i] for i in sorted(rng.choice(len(ev), held_out, replace=False).tolist())]
    banned = {normalise(r["instruction"]) for r in eval_rows}
    pool: list[dict[str, str]] = []
    by_source: dict[str, list[int]] = {}
    for name, rows in sources.items():
        kept = [r for r in rows if normalise(r["instruction"]) not in banned]
        if per_source is not None and len(kept) > per_source:
            rank = sorted(range(len(kept)), key=lambda i: (_draw(seed, kept[i]["instruction"]), i))
            kept = [kept[i] for i in sorted(rank[:per_source])]
        by_source[name] = list(range(len(pool), len(pool) + len(kept)))
        pool += kept
    names = list(by_source)
    subsets, mixes = [], []
    for _ in range(n_subsets):
        p = rng.dirichlet(np.full(len(names), alpha))
        counts = rng.multinomial(size, p)
        # a source that runs out gives its remainder to the others, in order of their share
        counts = np.minimum(counts, [len(by_source[n]) for n in names])
        short = size - int(counts.sum())
        for j in np.argsort(-p):
            if short <= 0:
                break
            room = len(by_source[names[j]]) - counts[j]
            add = min(room, short)
            counts[j] += add
            short -= add
        rows: list[int] = []
        for name, c in zip(names, counts.tolist(), strict=True):
            if c:
                rows += rng.choice(by_source[name], c, replace=False).tolist()
        subsets.append(sorted(rows))
        mixes.append({n: int(c) for n, c in zip(names, counts.tolist(), strict=True) if c})
    settings = {"n_subsets": n_subsets, "size": size, "held_out": held_out, "eval_source": eval_source,
                "alpha": alpha, "seed": seed, "per_source": per_source,
                "sources": {n: len(v) for n, v in by_source.items()}}  # fmt: skip
    return Design(pool, eval_rows, subsets, mixes, settings)
