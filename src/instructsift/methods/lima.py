"""LIMA-style curation: cheap rules, de-duplication, then the best answers of every category.

Zhou et al., NeurIPS 2023, "LIMA: Less Is More for Alignment". LIMA fine-tuned on 1,000 carefully
curated examples. From Stack Exchange it took answers of 1,200 to 4,096 characters, not written in the
first person, not referring to other answers, free of HTML residue, and sampled across topics taking
the top-voted answer within each (section 2.1). This recipe applies the same steps to any data set:

  1. `response_chars` within [min_chars, max_chars] (default 1,200 to 4,096, LIMA's window);
  2. the rules first_person, refers_other, residue and refusal (`--rules` picks which);
  3. language: keep `languages` (default en) — rows identified as another language with p >= 0.9 go;
  4. exact and MinHash near duplicates (Jaccard >= 0.7), keeping the first;
  5. with `--per-category N`: up to N per value of `--category-field` (default `category`, as in Dolly),
     best first by `--rank-by`; with `--clusters K` instead, per K-Means cluster of embeddings;
  6. with `--ratio`/`--top`: that many in all. Stratified (`--per-category`, `--category-field` or
     `--clusters` given), the total is spread evenly over the categories: each one's best answer, then
     each one's second best, and so on; otherwise it is simply the best by `--rank-by`.

`--rank-by` is any score column, highest first. The default, `response_chars`, is the cheap one: the
longest answers are a strong baseline for alignment data (Zhao et al., ICML 2024, "Long Is More for
Alignment"). `--rank-by ifd` adds the IFD scorer (Cherry LLM defaults, IFD > 1 dropped first) and
`--rank-by judge` the AlpaGasus judge, so that "best" means hardest-to-follow or best-rated.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..data.errors import OptionError, Placeholder
from ..registry import method, step
from ..scoring.rules import RULE_NAMES
from .alpagasus import judge_step
from .base import JUDGE_FIELDS, LM, LM_FIELDS, Encoder, Judge, Size, embed_options, lm_options

MIN_CHARS, MAX_CHARS = 1200, 4096
CATEGORY_FIELD = "category"
RANK_BY = "response_chars"
IFD_COLUMNS = ("ifd", "ifd_ppl", "loss_cond", "loss_direct")


class Params(Size, LM, Judge, Encoder):
    size_optional: ClassVar[bool] = True
    min_chars: int = Field(MIN_CHARS, ge=0, description="shortest answer kept")
    max_chars: int = Field(MAX_CHARS, ge=0, description="longest answer kept")
    rules: str | list[str] = Field(list(RULE_NAMES), description="rules that drop rows, comma-separated, or none")
    languages: str | list[str] = Field(["en"], description="languages kept")
    dedup_threshold: float = Field(0.7, gt=0, le=1, description="MinHash Jaccard of a near duplicate")
    per_category: int | None = Field(None, ge=1, description="keep up to N per category (or cluster)")
    category_field: str | None = Field(None, description=f"the record field holding the category [{CATEGORY_FIELD}]")
    clusters: int | None = Field(None, ge=1, description="stratify by K-Means clusters of embeddings instead")
    rank_by: str = Field(RANK_BY, description="score column ranking rows, highest first (ifd, judge add scorers)")


def _unused(p: Params, names: tuple[str, ...], why: str, *options: str, **values: Any) -> None:
    """Refuse the options `names` that were set: they only apply `why` (naming `options`, `values`)."""
    stray = [n for n in names if n in p.model_fields_set]
    if stray:
        raise OptionError(f"{', '.join(stray)} only apply {why}", *options, **values)


@method(
    paper="Zhou et al., NeurIPS 2023, LIMA: Less Is More for Alignment",
    summary="length window, first-person / other-answer / HTML / refusal rules, language, MinHash dedup; "
    "then up to N per category, best first",
    ratio_of="the rows left after its length, rule, language and de-duplication filters (and ifd <= 1 with --rank-by ifd)",
    defaults={
        "keep": f"{MIN_CHARS} <= response_chars <= {MAX_CHARS}",
        "rules": ", ".join(RULE_NAMES),
        "languages": "en (drop others with p >= 0.9)",
        "dedup": "exact + MinHash near (Jaccard >= 0.7), keep first",
        "category_field": CATEGORY_FIELD,
        "rank": RANK_BY,
    },
)
def steps(p: Params) -> list[dict[str, Any]]:
    if p.min_chars > p.max_chars:
        raise OptionError("{min_chars} is above {max_chars}", min_chars=p.min_chars, max_chars=p.max_chars)
    scoring = tuple(k for k in LM_FIELDS if k not in ("model", "trust_remote_code"))
    if p.rank_by not in IFD_COLUMNS and p.rank_by != "judge":
        _unused(p, scoring, "with {rank_by} or judge", rank_by="ifd")
    if p.rank_by != "judge":
        _unused(p, JUDGE_FIELDS, "with {rank_by}", rank_by="judge")
    if p.clusters is None:
        _unused(p, tuple(Encoder.model_fields), "with {clusters}", "clusters")
    out = [
        step("score", "rules", tokenizer=p.model, trust_remote_code=p.trust_remote_code or None),
        step("score", "language"),
        step("score", "minhash"),
    ]
    if p.rank_by in IFD_COLUMNS:
        out.append(step("score", "ifd", method="cherry", **lm_options(p)))
    elif p.rank_by == "judge":
        out.append(judge_step(p))
    if p.clusters is not None:
        out.append(step("score", "embed", **embed_options(p)))
    out += [
        step("select", "threshold", where=f"response_chars >= {p.min_chars} and response_chars <= {p.max_chars}"),
        step("select", "rule_filter", rules=p.rules),
        step("select", "keep_language", languages=p.languages),
        step("select", "dedup", threshold=p.dedup_threshold),
    ]
    if p.rank_by == "ifd":
        out.append(step("select", "threshold", where="ifd <= 1"))  # Cherry LLM: the instruction does not help
    sized = p.ratio is not None or p.top is not None
    if p.per_category is not None or (sized and (p.clusters is not None or p.category_field is not None)):
        by = None if p.clusters is not None else (p.category_field or CATEGORY_FIELD)
        strat = dict(per=p.per_category, rank=p.rank_by, clusters=p.clusters, k=p.top, ratio=p.ratio)
        stratified = step("select", "stratified", **strat)
        stratified["with"]["by"] = by  # None (clusters instead) must be written, not left to the default
        out.append(stratified)
    elif p.clusters is not None:
        raise OptionError(
            "{clusters} needs {per_category} or {top}/{ratio}: how many to keep",
            *("clusters", "top", "ratio"),
            per_category=Placeholder("N"),
        )
    elif sized:
        out.append(step("select", "top", column=p.rank_by, ratio=p.ratio, k=p.top, of="kept"))
    return out
