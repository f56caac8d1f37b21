"""The one shape everything between read and write speaks: an `Example` of `messages`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. `context` holds an Alpaca-style `input` that belongs with a user instruction."""

    role: str
    content: str
    context: str | None = None

    @property
    def text(self) -> str:
        """The turn as one string: the instruction, a blank line, then the input when there is one."""
        return f"{self.content}\n\n{self.context}" if self.context else self.content

    def as_dict(self) -> dict[str, str]:
        d = {"role": self.role, "content": self.content}
        if self.context:
            d["context"] = self.context
        return d


@dataclass(slots=True)
class Example:
    """An instruction example or a conversation, with its untouched original record.

    `row` is the 0-based position in the input; `line` the 1-based line in a text file (None for
    Parquet and datasets folders). `id` is the record's own `id` when it has one, otherwise derived
    from the content; it is unique within a data set.
    """

    id: str
    messages: tuple[Message, ...]
    row: int
    line: int | None = None
    record: Any = field(default=None, repr=False, compare=False)
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def content_hash(self) -> str:
        """A hash of what scorers see (roles and texts), independent of id and position; computed once
        (`messages` is not reassigned after reading). Slots, not a `__dict__`, keep a million examples small."""
        if self._hash is None:
            payload = json.dumps([m.as_dict() for m in self.messages], ensure_ascii=False, sort_keys=True)
            self._hash = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
        return self._hash

    @property
    def answer_turns(self) -> list[int]:
        """Indices of the assistant messages, each of which is a scored answer."""
        return [i for i, m in enumerate(self.messages) if m.role == "assistant"]

    @property
    def instruction(self) -> str:
        """The first user turn's text (instruction plus input)."""
        return next((m.text for m in self.messages if m.role == "user"), "")

    @property
    def response(self) -> str:
        """The last assistant turn's text."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")
