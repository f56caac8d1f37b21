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

from typing import Any

from ..data.errors import OptionError
from ..scoring.dedup import MinHashSignature
from ..scoring.language import Language
from ..scoring.rules import RULE_NAMES, Rules
from ..selection import Threshold, Top
from ..selection.dedup import Dedup
from ..selection.rules import KeepLanguage, RuleFilter
from ..selection.stratified import Stratified
from .base import Method, pick

MIN_CHARS, MAX_CHARS = 1200, 4096
CATEGORY_FIELD = "category"
RANK_BY = "response_chars"
IFD_COLUMNS = ("ifd", "ifd_ppl", "loss_cond", "loss_direct")
EMBED_COLUMNS = ("embedding",)


def _scorers(rank_by: str = RANK_BY, clusters: int | None = None, **o: Any) -> list[Any]:
    scorers: list[Any] = [
        Rules(tokenizer=o.get("model", "embedded"), trust_remote_code=o.get("trust_remote_code", False)),
        Language(),
        MinHashSignature(),
    ]
    if rank_by in IFD_COLUMNS:
        from ..scoring.ifd import IFD, IFD_OPTIONS

        scorers.append(IFD(method="cherry", **pick(o, IFD_OPTIONS)))
    elif rank_by == "judge":
        from ..scoring.judge import JUDGE_OPTIONS, Judge

        scorers.append(Judge(**pick(o, JUDGE_OPTIONS)))
    if clusters is not None:
        scorers.append(_embed_scorer(o))
    return scorers


def _embed_scorer(o: dict[str, Any]) -> Any:
    try:
        from ..scoring.embed import Embed
    except ImportError:
        raise OptionError(
            "stratifying by K-Means clusters needs the embed scorer (scoring/embed.py), which this install "
            "lacks: stratify by a record field with --category-field instead"
        ) from None
    return Embed()


def _selectors(
    ratio: float | None,
    k: int | None,
    *,
    min_chars: int = MIN_CHARS,
    max_chars: int = MAX_CHARS,
    rules: str | tuple[str, ...] = RULE_NAMES,
    languages: str | tuple[str, ...] = ("en",),
    dedup_threshold: float = 0.7,
    per_category: int | None = None,
    category_field: str | None = None,
    clusters: int | None = None,
    rank_by: str = RANK_BY,
    **_: Any,
) -> list[Any]:
    if min_chars > max_chars:
        raise OptionError(f"--min-chars {min_chars} is above --max-chars {max_chars}")
    keep: list[Any] = [
        Threshold(f"response_chars >= {int(min_chars)} and response_chars <= {int(max_chars)}"),
        RuleFilter(rules),
        KeepLanguage(languages),
        Dedup(threshold=dedup_threshold),
    ]
    if rank_by == "ifd":
        keep.append(Threshold("ifd <= 1"))  # Cherry LLM: an instruction that does not help is no signal
    sized = ratio is not None or k is not None
    if per_category is not None or (sized and (clusters is not None or category_field is not None)):
        by = None if clusters is not None else (category_field or CATEGORY_FIELD)
        keep.append(Stratified(per=per_category, by=by, rank=rank_by, clusters=clusters, k=k, ratio=ratio))
    elif clusters is not None:
        raise OptionError("--clusters needs --per-category N or --top/--ratio: how many to keep")
    elif sized:
        keep.append(Top(rank_by, ratio=ratio, k=k, of="kept"))
    return keep


LIMA = Method(
    name="lima",
    paper="Zhou et al., NeurIPS 2023, LIMA: Less Is More for Alignment",
    summary="length window, first-person / other-answer / HTML / refusal rules, language, MinHash dedup; "
    "then up to N per category, best first",
    defaults={
        "keep": f"{MIN_CHARS} <= response_chars <= {MAX_CHARS}",
        "rules": ", ".join(RULE_NAMES),
        "languages": "en (drop others with p >= 0.9)",
        "dedup": "exact + MinHash near (Jaccard >= 0.7), keep first",
        "category_field": CATEGORY_FIELD,
        "rank": RANK_BY,
    },
    make_scorers=_scorers,
    make_selectors=_selectors,
    needs_size=False,
)
