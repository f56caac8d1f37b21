"""Prompt templates: how the conversation before an answer is rendered as text.

`alpaca` is the Stanford Alpaca prompt that Cherry LLM scores with (Li et al., 2024, "From Quantity to
Quality", NAACL); `none` is Superfiltering's bare "{instruction}\\n{input}\\n" (Li et al., 2024,
"Superfiltering", ACL); `chat` is the model's own chat template; a JSON file gives a custom one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.errors import OptionError
from ..data.example import Message

ALPACA_SYSTEM_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)
ALPACA_SYSTEM_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
)


@dataclass(frozen=True)
class TextTemplate:
    """A plain-text template. Multi-turn: system, then each earlier turn and its answer, then this turn.

    `marker` is the response marker that Cherry LLM puts before the answer when scoring it alone.
    A system message in the data replaces the default system text (`system_format` wraps it).
    """

    name: str
    turn_input: str
    turn_no_input: str
    system_input: str = ""
    system_no_input: str = ""
    system_format: str = "{system}\n\n"
    answer_separator: str = "\n\n"
    marker: str = ""

    def render(self, history: Sequence[Message], tokenizer: Any = None) -> str:
        """The prompt text that precedes the answer to the last user turn in `history`."""
        system = next((m.content for m in history if m.role == "system"), None)
        first_user = next(m for m in history if m.role == "user")
        if system is not None:
            parts = [self.system_format.format(system=system)]
        else:
            parts = [self.system_input if first_user.context else self.system_no_input]
        for m in history:
            if m.role == "user":
                fmt = self.turn_input if m.context else self.turn_no_input
                parts.append(fmt.format(instruction=m.content, input=m.context or ""))
            elif m.role == "assistant":
                parts.append(m.content + self.answer_separator)
        return "".join(parts)

    def config(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ChatTemplate:
    """The tokenizer's own chat template with the generation prompt; user text = instruction + input."""

    name: str = "chat"
    marker: str = ""

    def render(self, history: Sequence[Message], tokenizer: Any = None) -> str:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise OptionError("template 'chat' needs a tokenizer with a chat template")
        messages = [{"role": m.role, "content": m.text} for m in history]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = getattr(tokenizer, "bos_token", None)
        # The special start tokens S are added separately, so drop a BOS the template wrote as text.
        if bos and text.startswith(bos) and tokenizer("").input_ids[:1] == [tokenizer.bos_token_id]:
            text = text[len(bos) :]
        return text

    def config(self) -> dict[str, Any]:
        return {"name": "chat"}


ALPACA = TextTemplate(
    name="alpaca",
    turn_input="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
    turn_no_input="### Instruction:\n{instruction}\n\n### Response:",
    system_input=ALPACA_SYSTEM_INPUT,
    system_no_input=ALPACA_SYSTEM_NO_INPUT,
    marker="### Response:",
)
NONE = TextTemplate(
    name="none",
    turn_input="{instruction}\n{input}\n",
    turn_no_input="{instruction}\n",
    system_format="{system}\n",
    answer_separator="\n",
)
BUILTIN = {"alpaca": ALPACA, "none": NONE, "chat": ChatTemplate()}
TEMPLATE_FILE_KEYS = (
    "turn_input",
    "turn_no_input",
    "system_input",
    "system_no_input",
    "system_format",
    "answer_separator",
    "marker",
)


def get_template(spec: str) -> TextTemplate | ChatTemplate:
    """A built-in template by name, or a JSON file with the `TextTemplate` fields.

    A template file needs `turn_no_input` (with `{instruction}`); `turn_input` (with `{instruction}`
    and `{input}`) defaults to it; the rest are optional.
    """
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if not path.is_file():
        raise OptionError(f"unknown template {spec!r}: use alpaca, chat, none, or a JSON template file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise OptionError(f"{spec}: line {e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict) or "turn_no_input" not in data:
        raise OptionError(f"{spec}: a template file is a JSON object with at least 'turn_no_input'")
    unknown = set(data) - set(TEMPLATE_FILE_KEYS)
    if unknown:
        raise OptionError(f"{spec}: unknown template fields {sorted(unknown)} (known: {', '.join(TEMPLATE_FILE_KEYS)})")
    if "{instruction}" not in data["turn_no_input"]:
        raise OptionError(f"{spec}: field 'turn_no_input' must contain {{instruction}}")
    data.setdefault("turn_input", data["turn_no_input"])
    return TextTemplate(name=f"file:{path.name}", **data)


# -- the tokenization convention shared by scoring and training -----------------------------------------
def start_ids(tokenizer: Any) -> tuple[int, ...]:
    """S: the tokens the tokenizer puts at the start of any text by default (`tok("")`, e.g. BOS)."""
    return tuple(tokenizer("").input_ids)


def turn_texts(example: Any, template: TextTemplate | ChatTemplate, tokenizer: Any = None) -> list[tuple[str, str]]:
    """(prompt, answer) for every assistant turn of an `Example`; the prompt renders everything before it."""
    return [
        (template.render(example.messages[:t], tokenizer), example.messages[t].content) for t in example.answer_turns
    ]


def tokenize_turns(
    examples: Sequence[Any], template: TextTemplate | ChatTemplate, tokenizer: Any
) -> list[list[tuple[tuple[int, ...], tuple[int, ...]]]]:
    """(S + tok(prompt), tok(answer)) for every assistant turn of every example, prompt and answer tokenized
    separately (no special tokens) and concatenated by the caller: the convention of IFD and fine-tuning."""
    start = start_ids(tokenizer)
    prompts, answers, owners = [], [], []
    for e, ex in enumerate(examples):
        for prompt, answer in turn_texts(ex, template, tokenizer):
            prompts.append(prompt)
            answers.append(answer)
            owners.append(e)
    p_ids = tokenizer(prompts, add_special_tokens=False).input_ids if prompts else []
    a_ids = tokenizer(answers, add_special_tokens=False).input_ids if answers else []
    out: list[list[tuple[tuple[int, ...], tuple[int, ...]]]] = [[] for _ in examples]
    for e, p, a in zip(owners, p_ids, a_ids, strict=True):
        out[e].append((start + tuple(p), tuple(a)))
    return out
