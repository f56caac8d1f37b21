"""SCAR: rank each example's answers with a style-consistency ranker and keep the highest.

Li et al., 2024, "SCAR: Data Selection via Style Consistency-Aware Response Ranking for Efficient
Instruction Tuning of Large Language Models" (arXiv 2406.10882; zhuang-li/SCAR). A ranker trained to
put LLM-style answers (direct, then referenced rewrites) above human-written ones scores every row
(`scar`); the top ratio is kept (the paper: 10k or 5k of a 320k pool, i.e. about 3% or 1.5%).
`--ranker` is a folder from `instructsift train-scar` or a released checkpoint
(`lizhuang144/scar-gte-base`, `scar-gte-large`, `scar-roberta-base`). Multi-turn rows are ranked turn
by turn and the turns' scores averaged (see `scoring/scar.py`; a recipe's `score: scar` step takes
`turns: min|first|last` and `batch_size`). Rows without a score are dropped with the scorer's reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..data.errors import OptionError
from ..registry import OptionalModelRef, method, step
from ..scoring.scar import MAX_LENGTH
from .base import Size, given

SCORER_FIELDS = ("max_length", "dtype", "device", "chunk_size")


class Params(Size):
    ranker: OptionalModelRef = Field(None, description="a folder from train-scar, or a SCAR checkpoint (hub id)")
    max_length: int | None = Field(None, ge=2, description=f"tokens per instruction and per answer [{MAX_LENGTH}]")
    dtype: str = Field("float32", description="auto, float32, bfloat16 or float16")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    chunk_size: int | None = Field(
        None, ge=1, description="examples per cached chunk: a resumed run redoes at most one [CPU 512, GPU 8192]"
    )


@method(
    paper="Li et al., 2024, SCAR: Style Consistency-Aware Response Ranking (arXiv 2406.10882)",
    summary="a trained style-consistency ranker scores each (instruction, answer); keep the highest",
    defaults={
        "ranker": "required: train-scar's folder or lizhuang144/scar-gte-base",
        "turns": "mean over answer turns",
        "max_length": MAX_LENGTH,
        "rank": "scar, highest first, ratio of all rows",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    if not p.ranker:
        raise OptionError(
            "needs {ranker}: a folder from train-scar, or a SCAR checkpoint (lizhuang144/scar-gte-base)", "ranker"
        )
    return [
        step("score", "scar", ranker=p.ranker, **given(p, SCORER_FIELDS)),
        step("select", "top", column="scar", ratio=p.ratio, k=p.top, of="all"),
    ]
