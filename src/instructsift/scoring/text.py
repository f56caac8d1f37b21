"""Small text helpers shared by the cheap rule scorers (rules, language, dedup)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ..data.example import Example

_FENCED = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]+`")


def prose(text: str) -> str:
    """`text` without its code: fenced blocks and inline code spans.

    LIMA keeps code blocks in answers; rules about wording (first person, refusals, HTML) read the prose.
    """
    return _INLINE.sub(" ", _FENCED.sub("\n", text))


def answers(example: Example) -> list[str]:
    """The texts of every assistant turn, in order."""
    return [example.messages[i].content for i in example.answer_turns]


def whole_text(example: Example) -> str:
    """Every turn's text (instructions, inputs and answers), one paragraph each."""
    return "\n\n".join(m.text for m in example.messages)


def todo_chunks(examples: Sequence[Example], skip: frozenset[str], size: int) -> Iterator[list[Example]]:
    """Deterministic chunks of `size` examples, minus those already scored; empty chunks are skipped."""
    for lo in range(0, len(examples), size):
        todo = [ex for ex in examples[lo : lo + size] if ex.content_hash not in skip]
        if todo:
            yield todo


def snippet(text: str, start: int, end: int, width: int = 30) -> str:
    """The match `text[start:end]` with up to `width` characters either side, on one line."""
    lo, hi = max(0, start - width), min(len(text), end + width)
    body = " ".join(text[lo:hi].split())
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")
