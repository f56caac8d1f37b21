"""Superfiltering: IFD from a small, weak model, as a perplexity ratio.

Li et al., 2024, "Superfiltering: Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL.
The prompt is the bare "{instruction}\\n{input}\\n", the answer alone has no prefix, examples with
IFD >= 1 are dropped, and the top ratio of the whole data set is kept.
"""

from __future__ import annotations

from ..scoring.ifd import IFD, IFD_OPTIONS
from ..selection import Threshold, Top
from .base import Method, pick

SUPERFILTERING = Method(
    name="superfiltering",
    paper="Li et al., ACL 2024, Superfiltering: Weak-to-Strong Data Filtering",
    summary="IFD as exp(loss_cond - loss_direct) from a small model; drop >= 1, keep the top ratio of all",
    defaults={"template": "none", "max_length": 1024, "prefix": "", "keep": "ifd_ppl < 1", "rank": "ifd_ppl"},
    make_scorers=lambda **o: [IFD(method="superfiltering", **pick(o, IFD_OPTIONS))],
    make_selectors=lambda ratio, k, **_: [Threshold("ifd_ppl < 1"), Top("ifd_ppl", ratio=ratio, k=k, of="all")],
)
