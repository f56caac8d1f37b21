"""Cherry LLM: IFD with the Alpaca template, drop IFD > 1, keep the highest.

Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning", NAACL. The direct loss is taken after the response marker "### Response:";
examples whose instruction does not help (IFD > 1) are dropped, then the top ratio of what remains
is kept. With `pre_experience` (`--pre-experience`), IFD is scored with the paper's pre-experienced
model: the base model fine-tuned one epoch on a K-Means sample (100 clusters x 10) of the data
(`train/pre_experience.py`).
"""

from __future__ import annotations

from typing import Any

from ..scoring.ifd import IFD, IFD_OPTIONS
from ..selection import Threshold, Top
from .base import Method, pick


def _prepare(dataset: Any, options: dict[str, Any]) -> dict[str, Any]:
    from ..train.pre_experience import prepare

    return prepare(dataset, options)


CHERRY = Method(
    name="cherry",
    paper="Li et al., NAACL 2024, From Quantity to Quality (Cherry LLM)",
    summary="IFD = loss(answer | prompt) / loss(answer); drop IFD > 1, keep the top ratio of the rest",
    defaults={
        "template": "alpaca",
        "max_length": 512,
        "prefix": "### Response:",
        "keep": "ifd <= 1",
        "rank": "ifd",
        "pre_experience": "off (on: K-Means 100 x 10, full fine-tuning 1 epoch)",
    },
    make_scorers=lambda **o: [IFD(method="cherry", **pick(o, IFD_OPTIONS))],
    make_selectors=lambda ratio, k, **_: [Threshold("ifd <= 1"), Top("ifd", ratio=ratio, k=k, of="kept")],
    prepare=_prepare,
)
