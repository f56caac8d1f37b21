"""Superfiltering.D: Superfiltering's IFD filter, then facility-location diversity over the pool.

Li et al., 2024, "Superfiltering: Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL.
IFD comes from a small model as a perplexity ratio (`ifd_ppl`, as `superfiltering`); rows with
ifd_ppl >= 1 are dropped and the highest ones form a pool (the paper: 20% of Alpaca, 10x the 2%
target); whole examples (instruction, input and response) are embedded with all-MiniLM-L6-v2 and
facility location picks the target from the pool. `pool_factor` sets the pool size.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..registry import method, step
from .base import LM, Encoder, Size, embed_options, lm_options

POOL_FACTOR = 10


class Params(Size, LM, Encoder):
    pool_factor: float = Field(POOL_FACTOR, ge=1, description="the pool is this many times the target")


@method(
    paper="Li et al., ACL 2024, Superfiltering (Superfiltering.D: with facility-location diversity)",
    summary="IFD from a small model; drop ifd_ppl >= 1; top 10x the target as a pool; facility location "
    "picks the target",
    ratio_of="all rows (its pool is pool_factor times that, also of all rows)",
    defaults={
        "template": "none",
        "max_length": 1024,
        "keep": "ifd_ppl < 1",
        "pool": "top 10 x target by ifd_ppl (20% for a 2% target)",
        "encoder": "embedded (all-MiniLM-L6-v2)",
        "embed_text": "whole",
        "similarity": "(1 + cos) / 2; dense up to 10,000 pool rows, 64-NN graph beyond",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    pool = {"ratio": min(1.0, p.ratio * p.pool_factor)} if p.ratio is not None else {"k": int(p.top * p.pool_factor)}
    return [
        step("score", "ifd", method="superfiltering", **lm_options(p)),
        step("score", "embed", **embed_options(p, text="whole")),
        step("select", "threshold", where="ifd_ppl < 1"),
        step("select", "top", column="ifd_ppl", of="all", **pool),
        step("select", "facility_location", column="embedding", ratio=p.ratio, k=p.top, of="all"),
    ]
