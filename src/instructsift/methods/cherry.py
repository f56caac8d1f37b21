"""Cherry LLM: IFD with the Alpaca template, drop IFD > 1, keep the highest.

Li et al., 2024, "From Quantity to Quality: Boosting LLM Performance with Self-Guided Data Selection
for Instruction Tuning", NAACL. The direct loss is taken after the response marker "### Response:";
examples whose instruction does not help (IFD > 1) are dropped, then the top ratio of what remains
is kept. With `pre_experience` (`--pre-experience`), IFD is scored with the paper's pre-experienced
model: the base model fine-tuned one epoch on a K-Means sample (100 clusters x 10) of the data,
expanded into recipe steps by `train/pre_experience.py`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..data.errors import OptionError
from ..registry import method, step
from .base import LM, Size, lm_options


class Params(Size, LM):
    pre_experience: bool = Field(False, description="score IFD with the pre-experienced model")
    pe_clusters: int | None = Field(None, ge=1, description="pre-experience: K-Means clusters [100]")
    pe_per_cluster: int | None = Field(None, ge=1, description="pre-experience: examples per cluster [10]")
    pe_epochs: float | None = Field(None, gt=0, description="pre-experience: epochs [1]")


PE_FIELDS = ("pe_clusters", "pe_per_cluster", "pe_epochs")


@method(
    paper="Li et al., NAACL 2024, From Quantity to Quality (Cherry LLM)",
    summary="IFD = loss(answer | prompt) / loss(answer); drop IFD > 1, keep the top ratio of the rest",
    ratio_of="the rows with ifd <= 1, as Cherry LLM's data_by_IFD.py",
    aliases=("ifd",),
    defaults={
        "template": "alpaca",
        "max_length": 512,
        "prefix": "### Response:",
        "keep": "ifd <= 1",
        "rank": "ifd",
        "pre_experience": "off (on: K-Means 100 x 10, full fine-tuning 1 epoch)",
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    scoring = lm_options(p)
    out: list[dict[str, Any]] = []
    if p.pre_experience:
        from ..train.pre_experience import pre_experience_steps

        pe, model = pre_experience_steps(p)
        out += pe
        scoring["model"] = model
    elif any(k in p.model_fields_set for k in PE_FIELDS):
        raise OptionError(
            "{pe_clusters}, {pe_per_cluster} and {pe_epochs} need {pre_experience}",
            *("pe_clusters", "pe_per_cluster", "pe_epochs", "pre_experience"),
        )
    return [
        *out,
        step("score", "ifd", method="cherry", **scoring),
        step("select", "threshold", where="ifd <= 1"),
        step("select", "top", column="ifd", ratio=p.ratio, k=p.top, of="kept"),
    ]
