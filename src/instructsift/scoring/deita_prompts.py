"""DEITA's scorer prompts, and the (instruction, response) turns of an example that they rate.

Liu et al., ICLR 2024, "What Makes Good Data for Alignment? A Comprehensive Study of Automatic Data
Selection in Instruction Tuning". The released scorers `hkust-nlp/deita-complexity-scorer` and
`hkust-nlp/deita-quality-scorer` are LLaMA-1 13B models fine-tuned (hkust-nlp/deita,
`src/deita/alignment/train_scorers.py`, conversation template "scorer": the messages concatenated with
no separator) on the prompt text followed directly by the score digit "1".."6". The two texts below are
those of the reference scorer classes (`src/deita/selection/scorer/llama_scorer.py` and
`mistral_scorer.py`, identical in both), character for character, trailing spaces included: the model
must see the text it was trained on, so these are not meant to be edited.

The reference encodes the filled-in text with the tokenizer's own special tokens (`tokenizer.encode`,
a BOS for LLaMA) and no chat template, and reads the next token's logits at the end of it.
"""

from __future__ import annotations

from ..data.example import Example

COMPLEXITY_SCORER = "hkust-nlp/deita-complexity-scorer"
QUALITY_SCORER = "hkust-nlp/deita-quality-scorer"

COMPLEXITY = (
    "You are a helpful assistant. Please identify the complexity score of the following user query. \n"
    "##Query: {instruction}  \n"
    "##Complexity: "
)
QUALITY = (
    "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
    "Question. \n"
    " #Question#:\n"
    "{instruction}\n"
    "#Response#:\n"
    "{output} \n"
    "##Quality: "
)
SCORES = (1, 2, 3, 4, 5, 6)


def complexity_prompt(instruction: str) -> str:
    """The complexity scorer's input for one instruction."""
    return COMPLEXITY.format(instruction=instruction)


def quality_prompt(instruction: str, response: str) -> str:
    """The quality scorer's input for one (instruction, response) pair."""
    return QUALITY.format(instruction=instruction, output=response)


def turns(example: Example) -> list[tuple[str, str]]:
    """(instruction, response) of every answered turn: each user message directly followed by an
    assistant message. The instruction is the user turn alone (with its Alpaca input after a blank
    line), without earlier turns, as DEITA scores each turn of a ShareGPT conversation; a system
    message is not shown. A last user message with no answer is not a turn here (DEITA scores it with
    an empty response; an unanswered question teaches nothing and its quality is not defined)."""
    msgs = example.messages
    return [
        (m.text, msgs[i + 1].content)
        for i, m in enumerate(msgs[:-1])
        if m.role == "user" and msgs[i + 1].role == "assistant"
    ]
