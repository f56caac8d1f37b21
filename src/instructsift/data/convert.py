"""Writing records in a trainer's format (`--to alpaca|sharegpt|openai`), keeping their other fields.

- openai: `messages` of `role`/`content`, as TRL's `SFTTrainer` (and most trainers) take them.
- sharegpt: `conversations` of `from` (human, gpt, system) / `value`; a leading system prompt as the
  top-level `system` field (LLaMA-Factory's sharegpt columns), any later one as a `system` turn.
- alpaca: `instruction`, `input`, `output`, with `system` and `history` ([[instruction, answer], ...])
  for a system prompt and earlier turns (LLaMA-Factory's alpaca columns); a conversation that is not
  an optional system prompt then user/assistant pairs cannot be written so, which `check` says before work.

An Alpaca `input` goes into the user turn after a blank line (the text the scorers read); from the chat
formats to Alpaca the user turn is the `instruction` and `input` is empty. The fields a record's own format
used (its instruction, turns, system prompt, ...) are replaced; every other field is kept as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .errors import FieldError, OptionError, Placeholder, literal
from .example import Message
from .records import ALPACA_ALIASES, FORMATS, PARSERS

SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system"}


def used_fields(record: Mapping[str, Any], fmt: str, fields: Mapping[str, str] | None) -> set[str]:
    """The fields of `record` that its format `fmt` reads (replaced when it is written in another)."""
    fields = fields or {}
    if fmt == "openai":
        return {fields.get("messages", "messages")}
    if fmt == "sharegpt":
        return {fields.get("conversations", "conversations"), fields.get("system", "system")}
    used = {fields.get("system", "system"), fields.get("history", "history")}
    for key, aliases in ALPACA_ALIASES.items():
        names = (fields[key],) if key in fields else aliases
        used |= {next((n for n in names if n in record), names[0])}
    return used


def alpaca_problem(messages: Sequence[Message]) -> str | None:
    """Why a conversation cannot be an Alpaca record, or None when it can."""
    turns = list(messages[1:] if messages and messages[0].role == "system" else messages)
    if any(m.role == "system" for m in turns):
        return "a system turn after the first"
    for i in range(0, len(turns) - 1, 2):
        if turns[i].role != "user" or turns[i + 1].role != "assistant":
            return f"turns {i} and {i + 1} are not a user turn and its answer"
    if len(turns) % 2:
        return "it does not end on an answer"
    return None


def from_messages(messages: Sequence[Message], to: str) -> dict[str, Any]:
    """The fields of format `to` that hold `messages`."""
    if to == "openai":
        return {"messages": [{"role": m.role, "content": m.text} for m in messages]}
    if to == "sharegpt":
        out: dict[str, Any] = {}
        turns = list(messages)
        if turns and turns[0].role == "system":
            out["system"] = turns.pop(0).content
        out["conversations"] = [{"from": SHAREGPT_FROM[m.role], "value": m.text} for m in turns]
        return out
    why = alpaca_problem(messages)
    if why:
        raise FieldError(
            None, f"cannot be written as alpaca: {literal(why)} (write it {{to}} or sharegpt)", to="openai"
        )
    turns = list(messages)
    out = {}
    if turns[0].role == "system":
        out["system"] = turns.pop(0).content
    *earlier, (user, answer) = [(turns[i], turns[i + 1]) for i in range(0, len(turns), 2)]
    out |= {"instruction": user.content, "input": user.context or "", "output": answer.content}
    if earlier:
        out["history"] = [[q.text, a.content] for q, a in earlier]
    return out


def convert(record: Mapping[str, Any], fmt: str, to: str, fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`record` (in format `fmt`, its fields named by `fields`) in format `to`: the new format's fields
    first, then every field the old format did not use, unchanged."""
    messages = PARSERS[fmt](record, fields)
    made = from_messages(messages, to)
    used = used_fields(record, fmt, fields)
    rest = {k: v for k, v in record.items() if k not in used}
    clash = [k for k in rest if k in made]
    if clash:
        raise FieldError(clash[0], f"is a field of the {to} format too: rename it before writing {{to}}", to=to)
    return made | rest


def check_to(to: str | None) -> None:
    if to is not None and to not in FORMATS:
        known = literal(f"unknown format (known: {', '.join(FORMATS)})")
        raise OptionError("{to}: " + known, to=Placeholder(repr(to)))


def check(examples: Iterable[Any], to: str | None, path: str) -> None:
    """Before any work: every example can be written in format `to` (only Alpaca refuses some)."""
    from .errors import InputError, Reject

    check_to(to)
    if to != "alpaca":
        return
    for ex in examples:
        why = alpaca_problem(ex.messages)
        if why:
            why = f"cannot be written {{to}}: {literal(why)}; write openai or sharegpt instead"
            raise InputError(Reject(path, ex.row, ex.line, None, why), to="alpaca")


def records(records: Iterable[Any], fmt: str, to: str, fields: Mapping[str, str] | None, path: str) -> Iterator[Any]:
    """`records` converted one by one; a record that cannot be is a `UserError` naming it."""
    for i, record in enumerate(records):
        try:
            yield convert(record, fmt, to, fields)
        except FieldError as e:
            where = f"{path}, written record {i}" + (f", field {e.field!r}" if e.field else "")
            raise e.at(where) from None
