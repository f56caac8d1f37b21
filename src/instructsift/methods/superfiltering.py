"""Superfiltering: IFD from a small, weak model, as a perplexity ratio.

Li et al., 2024, "Superfiltering: Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL.
The prompt is the bare "{instruction}\\n{input}\\n", the answer alone has no prefix, examples with
IFD >= 1 are dropped, and the top ratio of the whole data set is kept.
"""

from __future__ import annotations

from typing import Any

from ..registry import method, step
from .base import LM, Size, lm_options


class Params(Size, LM):
    pass


@method(
    paper="Li et al., ACL 2024, Superfiltering: Weak-to-Strong Data Filtering",
    summary="IFD as exp(loss_cond - loss_direct) from a small model; drop >= 1, keep the top ratio of all",
    ratio_of="all rows (Superfiltering: a share of the whole data set)",
    defaults={"template": "none", "max_length": 1024, "prefix": "", "keep": "ifd_ppl < 1", "rank": "ifd_ppl"},
)
def steps(p: Params) -> list[dict[str, Any]]:
    return [
        step("score", "ifd", method="superfiltering", **lm_options(p)),
        step("select", "threshold", where="ifd_ppl < 1"),
        step("select", "top", column="ifd_ppl", ratio=p.ratio, k=p.top, of="all"),
    ]
