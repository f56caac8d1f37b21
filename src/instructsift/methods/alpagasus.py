"""AlpaGasus: an LLM judge rates every example 0-5; keep those rated at least 4.5.

Chen et al., 2024, "AlpaGasus: Training a Better Alpaca with Fewer Data", ICLR. ChatGPT rated each
Alpaca (instruction, input, response) for accuracy on a 0-5 scale; the 9k examples above the threshold
4.5 trained a better model than all 52k. The paper says "above 4.5"; its code (`rating/filter.py`)
keeps scores >= the threshold, and so does this recipe: `judge >= 4.5`. A threshold alone is the
paper's recipe; `--ratio`/`--top` additionally keep the best of what passes. Rows the judge could not
rate (no reply, no number in it) are dropped with the judge's reason.

The judge is a server (`--judge-url`, `--judge-model`: vLLM, llama.cpp, `transformers serve`, OpenAI)
or, without a URL, a local model (`--model`, the embedded SmolLM2 by default) whose expected score
comes from its next-token probabilities. A rating is missing when the model puts less than
`judge_min_mass` (a half) of its probability on the score tokens: it was not answering with a score.
The embedded model puts about 1% there, so its ratings are missing unless that is lowered knowingly;
a small model's scores also sit on its own scale (pick `--threshold` or `--ratio` for it).
"""

from __future__ import annotations

from typing import Any

from ..scoring.judge import JUDGE_OPTIONS, Judge
from ..selection import Threshold, Top
from .base import Method, pick

THRESHOLD = 4.5


def _selectors(ratio: float | None, k: int | None, threshold: float = THRESHOLD, **_: Any) -> list[Any]:
    keep: list[Any] = [Threshold(f"judge >= {float(threshold)!r}")]
    if ratio is not None or k is not None:
        keep.append(Top("judge", ratio=ratio, k=k, of="kept"))
    return keep


ALPAGASUS = Method(
    name="alpagasus",
    paper="Chen et al., ICLR 2024, AlpaGasus: Training a Better Alpaca with Fewer Data",
    summary="an LLM judge rates each (instruction, input, response) 0-5 for accuracy; keep judge >= 4.5",
    defaults={
        "judge": "--judge-url server, or the local model (expected score)",
        "dimension": "accuracy",
        "keep": f"judge >= {THRESHOLD}",
        "rank": "judge (with --ratio/--top)",
    },
    make_scorers=lambda **o: [Judge(**pick(o, JUDGE_OPTIONS))],
    make_selectors=_selectors,
    needs_size=False,
)
