"""Record formats: Alpaca, ShareGPT and OpenAI messages, each parsed into `Message`s.

A parser takes one record (a dict) and returns its messages, or raises `FieldError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import FieldError
from .example import Message

FORMATS = ("alpaca", "sharegpt", "openai")

# Alpaca-like records under the names other data sets use (Dolly: context/response).
ALPACA_ALIASES = {"instruction": ("instruction",), "input": ("input", "context"), "output": ("output", "response")}

SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _text(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise FieldError(field, "missing")
        return None
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise FieldError(field, "is empty")
    return value


def _pick(record: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if name in record:
            return name, record[name]
    return names[0], None


# What `--fields` may map: each format's own field names (instruction=prompt: the data's `prompt` is the
# instruction).
FIELD_KEYS = ("instruction", "input", "output", "system", "history", "messages", "conversations")
# Field names seen on the hub for an instruction and an answer, for the "cannot tell the format" hint.
PROMPT_NAMES = ("prompt", "question", "query", "instruction", "input", "problem", "text")
ANSWER_NAMES = ("completion", "answer", "response", "output", "solution", "chosen", "target")


def parse_fields(spec: str | Mapping[str, str] | None) -> dict[str, str] | None:
    """`instruction=prompt,output=completion` (or a mapping, as a recipe gives it) as {format field: data
    field}; an `OptionError` naming what is wrong."""
    from .errors import OptionError, Placeholder, literal

    if spec is None or spec == "" or spec == {}:
        return None
    if isinstance(spec, str):
        pairs = [p.strip() for p in spec.split(",") if p.strip()]
        if any(p.count("=") != 1 for p in pairs):
            raise OptionError(
                "{fields}: expected FIELD=NAME pairs, e.g. instruction=prompt,output=completion",
                fields=Placeholder(repr(spec)),
            )
        spec = dict(tuple(x.strip() for x in p.split("=")) for p in pairs)
    if not isinstance(spec, Mapping):
        raise OptionError(f"fields: expected a mapping like {{instruction: prompt}}, got {type(spec).__name__}")
    out = {str(k): str(v) for k, v in spec.items()}
    bad = [k for k in out if k not in FIELD_KEYS]
    if bad:
        known = literal(f"{bad[0]!r} is no field of a format (known: {', '.join(FIELD_KEYS)})")
        raise OptionError("{fields}: " + known, "fields")
    if any(not v for v in out.values()):
        raise OptionError("{fields}: every FIELD=NAME needs a NAME", "fields")
    return out


class FieldMap(dict):
    """A `fields` mapping that prints as the command line takes it (`instruction=prompt,output=answer`); its
    repr is the dict's, as Python takes it."""

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.items())


def fields_hint(keys: list[str], answer: bool = True) -> FieldMap:
    """A `fields` suggestion for a record with these field names: the likeliest instruction field, and with
    `answer` the likeliest answer field. A message names it as `{fields}` with `fields=` the hint."""
    prompt = next((k for n in PROMPT_NAMES for k in keys if k.lower() == n), "PROMPT_FIELD")
    out = FieldMap(instruction=prompt)
    if answer:
        out["output"] = next((k for n in ANSWER_NAMES for k in keys if k.lower() == n and k != prompt), "ANSWER_FIELD")
    return out


def parse_alpaca(
    record: Mapping[str, Any], fields: Mapping[str, str] | None = None, *, answer_optional: bool = False
) -> list[Message]:
    """`instruction`, optional `input`, `output`; optional `system` and `history` ([[q, a], ...]). With
    `answer_optional`, a row without an `output` (missing or blank) is the instruction alone."""
    fields = fields or {}
    names = {k: ((fields[k],) if k in fields else v) for k, v in ALPACA_ALIASES.items()}
    ins_name, instruction = _pick(record, names["instruction"])
    inp_name, inp = _pick(record, names["input"])
    out_name, output = _pick(record, names["output"])
    messages: list[Message] = []
    sys_name, hist_name = fields.get("system", "system"), fields.get("history", "history")
    system = _text(record.get(sys_name), sys_name, required=False)
    if system:
        messages.append(Message("system", system))
    history = record.get(hist_name)
    if history:
        if not isinstance(history, list):
            raise FieldError(
                hist_name, f"must be a list of [instruction, response] pairs, got {type(history).__name__}"
            )
        for i, pair in enumerate(history):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise FieldError(f"{hist_name}[{i}]", "must be an [instruction, response] pair")
            messages.append(Message("user", _text(pair[0], f"{hist_name}[{i}][0]")))
            messages.append(Message("assistant", _text(pair[1], f"{hist_name}[{i}][1]")))
    context = _text(inp, inp_name, required=False)
    messages.append(Message("user", _text(instruction, ins_name), context or None))
    if answer_optional and (output is None or (isinstance(output, str) and not output.strip())):
        return messages
    messages.append(Message("assistant", _text(output, out_name)))
    return messages


def _turns(
    record: Mapping[str, Any], key: str, role_key: str, text_key: str, roles: Mapping[str, str]
) -> list[Message]:
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise FieldError(key, "must be a non-empty list of turns" if turns is not None else "missing")
    messages: list[Message] = []
    for i, turn in enumerate(turns):
        where = f"{key}[{i}]"
        if not isinstance(turn, Mapping):
            raise FieldError(where, f"must be an object, got {type(turn).__name__}")
        raw_role = turn.get(role_key)
        if raw_role not in roles:
            raise FieldError(f"{where}.{role_key}", f"unsupported role {raw_role!r} (known: {', '.join(roles)})")
        role = roles[raw_role]
        content = turn.get(text_key)
        if isinstance(content, list):  # OpenAI content parts
            content = _join_parts(content, f"{where}.{text_key}")
        messages.append(Message(role, _text(content, f"{where}.{text_key}", required=role == "assistant") or ""))
    return messages


def _join_parts(parts: list[Any], field: str) -> str:
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise FieldError(f"{field}[{j}]", f"only text parts are supported, got {kind!r}")
        texts.append(_text(part.get("text"), f"{field}[{j}].text", required=False) or "")
    return "".join(texts)


def parse_sharegpt(record: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> list[Message]:
    """`conversations` of `from`/`value`; optional top-level `system`."""
    fields = fields or {}
    messages = _turns(record, fields.get("conversations", "conversations"), "from", "value", SHAREGPT_ROLES)
    sys_name = fields.get("system", "system")
    system = _text(record.get(sys_name), sys_name, required=False)
    return ([Message("system", system)] if system else []) + messages


def parse_openai(record: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> list[Message]:
    """`messages` of `role`/`content` (a string or a list of text parts)."""
    return _turns(record, (fields or {}).get("messages", "messages"), "role", "content", OPENAI_ROLES)


PARSERS: dict[str, Callable[..., list[Message]]] = {
    "alpaca": parse_alpaca,
    "sharegpt": parse_sharegpt,
    "openai": parse_openai,
}


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: Any, field: str | None = None) -> None:
    """Raise `FieldError` naming the first string (or key) anywhere in a record that holds a lone surrogate
    (JSON's `"\\ud800"`, or CESU-8 bytes in Parquet): it is not Unicode text, and no hash, tokenizer or
    UTF-8 writer can take it."""
    if isinstance(value, str):
        m = _SURROGATE.search(value)
        if m:
            raise FieldError(
                field, f"holds a lone surrogate {ascii(m.group())[1:-1]} at character {m.start()} (not Unicode text)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and _SURROGATE.search(key):
                raise FieldError(field, f"the field name {ascii(key)} holds a lone surrogate")
            check_text(item, key if field is None else f"{field}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_text(item, f"{field or ''}[{i}]")


def check_conversation(messages: list[Message], *, answer_optional: bool = False) -> None:
    """At least one answer, and a user turn before the first answer; with `answer_optional` (an instruction
    alone is enough: target rows), at least a user turn."""
    roles = [m.role for m in messages]
    if answer_optional and "assistant" not in roles:
        if "user" not in roles:
            raise FieldError(None, "no user turn: a row needs an instruction")
        return
    if "assistant" not in roles:
        raise FieldError(None, "no assistant turn: nothing to score")
    first_answer = roles.index("assistant")
    if "user" not in roles[:first_answer]:
        raise FieldError(None, "the first assistant turn has no user turn before it")


def detect_format(record: Any, fields: Mapping[str, str] | None = None) -> str | None:
    """The format a record looks like, or None."""
    if not isinstance(record, Mapping):
        return None
    fields = fields or {}
    if fields.get("messages", "messages") in record:
        return "openai"
    if fields.get("conversations", "conversations") in record:
        return "sharegpt"
    names = ALPACA_ALIASES["instruction"] + tuple(v for k, v in fields.items() if k in ALPACA_ALIASES)
    if any(n in record for n in names):
        return "alpaca"
    return None
