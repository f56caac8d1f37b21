"""Superfiltering.D: Superfiltering's IFD filter, then facility-location diversity over the pool.

Li et al., 2024, "Superfiltering: Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL.
IFD comes from a small model as a perplexity ratio (`ifd_ppl`, as `superfiltering`); rows with
ifd_ppl >= 1 are dropped and the highest ones form a pool (the paper: 20% of Alpaca, 10x the 2%
target); whole examples (instruction, input and response) are embedded with all-MiniLM-L6-v2 and
facility location picks the target from the pool. `pool_factor` (API) sets the pool size.
"""

from __future__ import annotations

from typing import Any

from ..data.errors import OptionError
from ..scoring.embed import Embed, embed_options
from ..scoring.ifd import IFD, IFD_OPTIONS
from ..selection import Threshold, Top
from ..selection.facility import FacilityLocation
from .base import Method, pick

POOL_FACTOR = 10


def _selectors(ratio: float | None, k: int | None, **options: Any) -> list[Any]:
    factor = options.get("pool_factor", POOL_FACTOR)
    if factor < 1:
        raise OptionError(f"pool_factor must be at least 1, got {factor}")
    pool = {"ratio": min(1.0, ratio * factor)} if ratio is not None else {"k": k * factor}
    return [
        Threshold("ifd_ppl < 1"),
        Top("ifd_ppl", of="all", **pool),
        FacilityLocation("embedding", ratio=ratio, k=k, of="all"),
    ]


SUPERFILTERING_D = Method(
    name="superfiltering-d",
    paper="Li et al., ACL 2024, Superfiltering (Superfiltering.D: with facility-location diversity)",
    summary="IFD from a small model; drop ifd_ppl >= 1; top 10x the target as a pool; facility location picks the target",
    defaults={
        "template": "none",
        "max_length": 1024,
        "keep": "ifd_ppl < 1",
        "pool": "top 10 x target by ifd_ppl (20% for a 2% target)",
        "encoder": "embedded (all-MiniLM-L6-v2)",
        "embed_text": "whole",
        "similarity": "(1 + cos) / 2; dense up to 10,000 pool rows, 64-NN graph beyond",
    },
    make_scorers=lambda **o: [
        IFD(method="superfiltering", **pick(o, IFD_OPTIONS)),
        Embed(**embed_options(o, text="whole")),
    ],
    make_selectors=_selectors,
)
