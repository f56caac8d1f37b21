"""The AlpaGasus rating prompt and how a judge's answer becomes a 0-5 score.

Chen et al., 2024, "AlpaGasus: Training a Better Alpaca with Fewer Data", ICLR. The judge sees a
system prompt asking for feedback on an AI assistant, then the (instruction, input, response) triplet,
then a request to rate one dimension (accuracy in the paper's main results, helpfulness as a variant)
on a 0-5 scale, the score alone on the first line. The wording below follows the paper's rating prompt.

A score is read in one of three ways:
  - `reply`: the first number in the judge's reply text (a server without log-probabilities);
  - `logprobs`: the expected value over the score tokens at the position where the reply's number
    starts, from the server's top log-probabilities;
  - `next-token`: the expected value over the score tokens of the next-token distribution after the
    prompt, from a local model (no generation).
A reply that cannot be read is missing (None) with a reason; it is never turned into a number.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.errors import MissingFileError, OptionError
from ..data.example import Example

SYSTEM = (
    "We would like to request your feedback on the performance of AI assistant in response to the "
    "instruction and the given input displayed following."
)
_REQUEST = (
    "Please rate according to the {dimension} of the response to the instruction and the input. Each "
    "assistant receives a score on a scale of 0 to 5, where a higher score indicates higher level of the "
    "{dimension}. Please first output a single line containing value indicating the scores. In the subsequent "
    "line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias."
)
# AlpaGasus always shows the Input section, empty when the example has no input.
_TRIPLET = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{response}\n\n"
DIMENSIONS = ("accuracy", "helpfulness")
FIELDS = ("{instruction}", "{input}", "{response}")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_CONTINUES_NUMBER = re.compile(r"\d|[.,]\d")  # what follows a digit token inside one number


@dataclass(frozen=True)
class JudgePrompt:
    """A rating prompt: an optional system message and a user message with `{instruction}`, `{input}`
    and `{response}` fields, rating on the integer scale `low`..`high`."""

    name: str
    user: str
    system: str | None = SYSTEM
    low: int = 0
    high: int = 5

    @property
    def scores(self) -> range:
        return range(self.low, self.high + 1)

    def messages(self, example: Example) -> list[dict[str, str]]:
        """The chat messages that ask the judge to rate `example`'s last answer."""
        instruction, context, response = triplet(example)
        user = self.user
        for name, value in zip(FIELDS, (instruction, context, response), strict=True):
            user = user.replace(name, value)
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": user}]

    def config(self) -> dict[str, Any]:
        return {"user": self.user, "system": self.system, "low": self.low, "high": self.high}


def alpagasus(dimension: str = "accuracy") -> JudgePrompt:
    """The AlpaGasus prompt for one dimension."""
    if dimension not in DIMENSIONS:
        raise OptionError(f"unknown judge dimension {dimension!r} (known: {', '.join(DIMENSIONS)})")
    return JudgePrompt(f"alpagasus-{dimension}", _TRIPLET + _REQUEST.format(dimension=dimension))


def get_prompt(dimension: str = "accuracy", path: str | None = None) -> JudgePrompt:
    """The AlpaGasus prompt for `dimension`, or a custom prompt file.

    A `.json` file holds {"user": ..., "system": ... (optional, none if absent), "low": 0, "high": 5};
    any other file is the user message itself, with no system message. The user message must contain
    `{instruction}` and `{response}` (`{input}` is optional); other braces are left as they are.
    """
    if path is None:
        return alpagasus(dimension)
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{path}: judge prompt file not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise OptionError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from None
        known = {"user", "system", "low", "high"}
        if not isinstance(data, dict) or "user" not in data or set(data) - known:
            raise OptionError(
                f"{path}: a judge prompt file is a JSON object with 'user' and optionally {known - {'user'}}"
            )
        prompt = JudgePrompt(
            f"file:{p.name}", data["user"], data.get("system"), int(data.get("low", 0)), int(data.get("high", 5))
        )
    else:
        prompt = JudgePrompt(f"file:{p.name}", text, None)
    missing = [f for f in ("{instruction}", "{response}") if f not in prompt.user]
    if missing:
        raise OptionError(f"{path}: the judge prompt must contain {' and '.join(missing)}")
    if not 0 <= prompt.low < prompt.high <= 9:
        raise OptionError(f"{path}: the scale must be integers with 0 <= low < high <= 9 (one token per score)")
    return prompt


def triplet(example: Example) -> tuple[str, str, str]:
    """(instruction, input, response) of the last answer. Earlier turns of a conversation (and a system
    message) go before the last instruction as a transcript, so the judge sees what the answer answers."""
    last = example.answer_turns[-1] if example.answer_turns else len(example.messages)
    user_at = max((i for i in range(last) if example.messages[i].role == "user"), default=None)
    if user_at is None:
        return "", "", example.response
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    history = [f"{names[m.role]}: {m.text}" for m in example.messages[:user_at]]
    user = example.messages[user_at]
    instruction = "\n\n".join([*history, user.content])
    response = example.messages[last].content if last < len(example.messages) else ""
    return instruction, user.context or "", response


def parse_reply(text: str | None, low: int = 0, high: int = 5) -> tuple[float | None, str | None]:
    """The first number in the reply, or (None, reason). A number outside the scale is not a score."""
    if text is None or not text.strip():
        return None, "empty reply"
    m = _NUMBER.search(text)
    if m is None:
        return None, "no number in the reply"
    value = float(m.group())
    if not low <= value <= high:
        return None, f"the first number in the reply, {m.group()}, is outside the scale {low}-{high}"
    return value, None


def score_token(token: str, scores: range) -> int | None:
    """The score a token stands for ("4", " 4"), or None."""
    t = token.strip()
    return int(t) if t.isascii() and t.isdigit() and int(t) in scores and t == str(int(t)) else None


def expected_score(probs: dict[int, float]) -> tuple[float | None, float]:
    """(sum of s * p_s / sum of p_s, sum of p_s) over score tokens; None where the mass is zero."""
    mass = math.fsum(probs.values())
    if not mass > 0:
        return None, 0.0
    return math.fsum(s * p for s, p in probs.items()) / mass, mass


def logprob_score(content: Sequence[Any] | None, scores: range) -> tuple[float | None, float | None]:
    """Expected score from OpenAI-format token log-probabilities (`choices[0].logprobs.content`).

    The score position is the first generated token that starts with a digit. When the judge's own
    token there is a whole score (a score token not continued by more digits or a decimal part in the
    tokens after it), the score is the expected value over the score tokens among that position's top
    log-probabilities (renormalized); the mass they hold is returned beside it. Otherwise (no digit;
    a number such as "10" or "4.5" that tokenizers split into "1" "0" or "4" "." "5") the result is
    (None, None) and the caller reads the reply text instead.
    """
    items = list(content or ())
    for i, item in enumerate(items):
        token = _get(item, "token") or ""
        if not token.strip()[:1].isdigit():
            continue
        after = "".join(_get(x, "token") or "" for x in items[i + 1 : i + 3])
        if score_token(token, scores) is None or _CONTINUES_NUMBER.match(after):
            return None, None
        probs: dict[int, float] = {}
        seen: set[str] = set()
        for cand in _candidates(item):
            tok, lp = _get(cand, "token"), _get(cand, "logprob")
            s = score_token(tok or "", scores)
            if s is None or tok in seen or lp is None or not math.isfinite(float(lp)):
                continue
            seen.add(tok)
            probs[s] = probs.get(s, 0.0) + math.exp(float(lp))
        value, mass = expected_score(probs)
        return (value, mass) if value is not None else (None, None)
    return None, None


def _candidates(item: Any) -> Iterable[Any]:
    yield item
    yield from _get(item, "top_logprobs") or ()


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
