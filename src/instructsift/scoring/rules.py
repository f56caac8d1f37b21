"""Rule scorers for LIMA-style curation: answer length and wording rules, each with its evidence.

Zhou et al., NeurIPS 2023, "LIMA: Less Is More for Alignment", section 2.1: Stack Exchange answers
were kept only when 1,200 to 4,096 characters long, not written in the first person ("I", "my"), not
referring to other answers ("as mentioned", "stack exchange"), and with links, images and other HTML
removed. `Rules` measures the last answer's length (characters, and tokens of a configurable
tokenizer) and checks every answer turn's prose (code blocks excluded) for:

  rule_first_person   "I", "my", "me", "myself", "as an AI", "as a language model"
  rule_refers_other   "as mentioned above", "the other answer", "in the comments", "EDIT:", "stack exchange"
  rule_residue        HTML tags, markdown images, HTML entities and mojibake (in code too), an answer
                      that is only a link
  rule_refusal        "I'm sorry, but", "I cannot help with", "as an AI I cannot", "against my guidelines"

Each rule column holds the evidence (the matched words in context, with the turn when the example has
several answers) or null when the rule does not fire; `rule_flags` lists the rules that fired. The
scorer never decides: `selection.rules.RuleFilter` drops flagged rows and keeps the evidence as reason.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import OptionalModelRef, register
from .base import LIGHT, Advance, Chunks, Resources, Skip, config_hash
from .text import answers, prose, snippet, todo_chunks

I_ = re.IGNORECASE

# Roman numerals and names, not the pronoun: "World War I", "Type I error", "Henry I".
_NOT_PRONOUN_BEFORE = re.compile(
    r"(?:war|type|part|chapter|phase|class|act|book|volume|vol\.|grade|stage|level|tier|article|title|schedule|"
    r"king|queen|pope|tsar|czar|emperor|henry|louis|charles|elizabeth|james|george|william|edward|richard|"
    r"john|peter|mary|napoleon|frederick|alexander|nicholas|ferdinand|philip|leopold|paul|ii)\W*$",
    I_,
)

FIRST_PERSON = (
    re.compile(r"(?<![\w'./-])I(?:'m|'ve|'d|'ll)?(?![\w/-]|\.\w)"),
    re.compile(r"\b[Mm](?:y|e|yself)\b"),
    re.compile(r"\bas an? (?:AI|artificial intelligence|(?:AI |large )?language model|LLM|AI assistant)\b", I_),
)

_MENTIONED = r"(?:mentioned|stated|noted|said|pointed out|discussed|suggested|answered|explained)"
_POST = r"(?:answers?|repl(?:y|ies)|responses?|posts?|comments?|posters?|commenters?)"
REFERS_OTHER = (
    re.compile(rf"\bas (?:(?:was|has been|already|previously|others?(?: have)?|someone|somebody) )*{_MENTIONED}\b", I_),
    re.compile(
        r"\b(?:other|another|previous|earlier|accepted|top-voted) (?:answers?|repl(?:y|ies)|responses?|posters?|commenters?)\b",
        I_,
    ),
    re.compile(rf"\b{_POST} (?:above|below)\b", I_),
    re.compile(r"\bin the comments?\b", I_),
    re.compile(r"^\W{0,3}(?:edit|update)\s*\d*\s*:", I_ | re.MULTILINE),
    re.compile(r"\b(?:the OP|OP's)\b|\bstack ?(?:exchange|overflow)\b|\bsuper ?user\.com\b", I_),
)
# "as stated in the passage" points at the example's own context, not at another answer.
_OWN_CONTEXT = re.compile(
    r"\s*(?:in|by) (?:the |this )?(?:text|passage|article|paragraph|context|reference|document|input|question|prompt)",
    I_,
)

_URL = r"(?:https?://|www\.)\S+"
RESIDUE = (  # the first two are looked for in prose only, the others everywhere (see _residue)
    re.compile(
        r"</?(?:a|abbr|b|blockquote|br|center|div|em|font|h[1-6]|hr|i|iframe|img|li|ol|p|pre|script|span|strong|"
        r"style|sub|sup|table|tbody|td|th|thead|tr|u|ul)\b[^<>]{0,200}/?>",
        I_,
    ),
    re.compile(r"!\[[^\]]*\]\([^)]*\)"),
    re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{2,5}|#x[0-9a-f]{2,4});", I_),
    re.compile(r"\ufffd|â€[™œ˜“”\x9d]|Ã[©¨¡³±¶¼]"),
)
_LINK_ONLY = re.compile(rf"^\W*(?:(?:\[[^\]]*\]\(\s*{_URL}\s*\)|<?{_URL}>?)\W*)+$", I_)

REFUSAL = (
    re.compile(
        r"\bI(?:'m| am) (?:so |very |really )?(?:sorry|afraid),? (?:but )?I (?:can(?:'t|not)|won't|am unable|'m unable)",
        I_,
    ),
    re.compile(r"\bI(?:'m| am) sorry,? but\b|\bI apologi[sz]e,? but\b", I_),
    re.compile(
        r"\bI (?:can(?:'t|not| not)|won't|will not|am unable to|'m unable to|am not able to|'m not able to|must decline to) "
        r"(?:help(?! but)|assist|provide|fulfill|fulfil|comply|complete|do that|answer|write|create|generate|support|engage|"
        r"share|give|offer|browse|access)\b",
        I_,
    ),
    re.compile(
        r"\bas an? (?:AI|language model|AI language model)\b[^.!?\n]{0,60}\b(?:can(?:'t|not)|don't|do not|unable|not able)\b",
        I_,
    ),
    re.compile(
        r"\bI (?:don't|do not) have (?:access to|the ability to|personal (?:opinions|experiences|feelings|beliefs)|real-time)",
        I_,
    ),
    re.compile(
        r"\bagainst (?:my|our) (?:programming|guidelines|(?:content |usage )?polic(?:y|ies)|ethical guidelines)\b", I_
    ),
    re.compile(r"\bit(?:'s| is| would(?: not)? be) (?:not |in)appropriate for me to\b", I_),
)

RULES: dict[str, tuple[re.Pattern[str], ...]] = {
    "first_person": FIRST_PERSON,
    "refers_other": REFERS_OTHER,
    "residue": RESIDUE,
    "refusal": REFUSAL,
}
RULE_NAMES = tuple(RULES)


_NEXT_WORD = re.compile(r"[\s,:;\"']*(\S)")


def _not_pronoun(text: str, m: re.Match[str]) -> bool:
    """Whether a first-person match is something else: a numeral ("World War I", "Henry I", a heading
    "I. Introduction"), a key ("Ctrl + Shift + I"), or part of a title ("How I Met Your Mother",
    "Stand By Me", "My Blue Heaven": the next word is capitalised)."""
    at, word = m.start(), m.group(0)
    if word == "I":
        before = text[max(0, at - 14) : at]
        if _NOT_PRONOUN_BEFORE.search(before) or before.rstrip().endswith("+"):
            return True
        line_start = text.rfind("\n", 0, at) + 1
        if not text[line_start:at].strip() and text[at + 1 : at + 2] in (".", ")"):
            return True
    if word[0].isupper():
        nxt = _NEXT_WORD.match(text, m.end())
        if nxt and nxt.group(1).isupper() and nxt.group(1) != "I":
            return True
        prev = text[:at].rstrip()
        if word in ("Me", "Myself") and prev and prev.split()[-1][:1].isupper():
            return True  # "Stand By Me"
    return False


def _first_person(text: str) -> re.Match[str] | None:
    for pattern in FIRST_PERSON:
        for m in pattern.finditer(text):
            if pattern is not FIRST_PERSON[2] and _not_pronoun(text, m):
                continue
            return m
    return None


def _refers_other(text: str) -> re.Match[str] | None:
    for pattern in REFERS_OTHER:
        for m in pattern.finditer(text):
            if pattern is REFERS_OTHER[0] and _OWN_CONTEXT.match(text, m.end()):
                continue
            return m
    return None


def _residue(text: str, raw: str) -> str | None:
    for pattern in RESIDUE:
        # HTML entities and mojibake are scraping damage in code too (`open(&quot;f&quot;)`); tags and
        # images count only in prose, since code may show HTML on purpose.
        where = text if pattern in RESIDUE[:2] else raw
        m = pattern.search(where)
        if m:
            return snippet(where, m.start(), m.end())
    if _LINK_ONLY.match(raw.strip()):
        return "only a link: " + snippet(raw.strip(), 0, 0, 60)
    return None


def _first(patterns: Sequence[re.Pattern[str]], text: str) -> re.Match[str] | None:
    for pattern in patterns:
        m = pattern.search(text)
        if m:
            return m
    return None


def check(text: str) -> dict[str, str | None]:
    """Every rule on one answer: {rule: evidence or None}. Code blocks are not read, except for HTML
    entities and mojibake (residue wherever they are)."""
    body = prose(text).replace("’", "'")
    found: dict[str, str | None] = {}
    for rule, match in (
        ("first_person", _first_person(body)),
        ("refers_other", _refers_other(body)),
        ("refusal", _first(REFUSAL, body)),
    ):
        found[rule] = snippet(body, match.start(), match.end()) if match else None
    found["residue"] = _residue(body, text)
    return {rule: found[rule] for rule in RULE_NAMES}


def check_example(example: Example) -> dict[str, str | None]:
    """`check` over every answer turn: the first turn's evidence per rule, naming the turn when there
    are several answers."""
    turns = answers(example)
    out: dict[str, str | None] = dict.fromkeys(RULE_NAMES)
    for t, text in enumerate(turns, start=1):
        for rule, evidence in check(text).items():
            if evidence and out[rule] is None:
                out[rule] = f"answer {t} of {len(turns)}: {evidence}" if len(turns) > 1 else evidence
    return out


def _rules_fingerprint() -> str:
    """Changes when any pattern changes, so cached flags are recomputed."""
    parts = [p.pattern + str(p.flags) for ps in RULES.values() for p in ps]
    parts += [_NOT_PRONOUN_BEFORE.pattern, _NEXT_WORD.pattern, _OWN_CONTEXT.pattern, _LINK_ONLY.pattern]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str, gguf_file: str | None, trust_remote_code: bool) -> Any:
    """A tokenizer, loaded once per process (reading one from a GGUF file takes seconds)."""
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)


def _schema() -> Any:
    import pyarrow as pa

    cols = [("response_chars", pa.int64()), ("response_tokens", pa.int64())]
    cols += [(f"rule_{r}", pa.string()) for r in RULE_NAMES]
    return pa.schema([*cols, ("rule_flags", pa.list_(pa.string()))])


@register("score", "rules")
@dataclass
class Rules:
    """LIMA's cheap rules. `response_chars` and `response_tokens` measure the last answer; the rule
    columns read every answer. `tokenizer` is a model spec (as `--model`) whose tokenizer counts tokens,
    loaded without the model's weights; None leaves `response_tokens` null."""

    tokenizer: OptionalModelRef = EMBEDDED
    trust_remote_code: bool = False
    chunk_size: int = 1024
    resources: ClassVar[Resources] = LIGHT  # no model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = dict.fromkeys(
        ("response_chars", "response_tokens", *(f"rule_{r}" for r in RULE_NAMES), "rule_flags")
    )
    name: str = field(default="rules", init=False)
    _tok: Any = field(default=None, init=False, repr=False)
    _source: tuple[str, dict[str, Any], str] | None = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        return _schema()

    def _tokenizer_source(self) -> tuple[str, dict[str, Any], str] | None:
        if self.tokenizer is None:
            return None
        if self._source is None:
            from ..models import resolve_tokenizer

            self._source = resolve_tokenizer(self.tokenizer)
        return self._source

    def load_tokenizer(self) -> Any:
        if self._tok is None and self.tokenizer is not None:
            path, kwargs, _ = self._tokenizer_source()
            self._tok = _load_tokenizer(path, kwargs.get("gguf_file"), self.trust_remote_code)
        return self._tok

    def cache_key(self) -> str:
        """Patterns and tokenizer are hashed; bump the `rules/N` version when the matching code changes."""
        source = self._tokenizer_source()
        config = {"scorer": "rules/1", "rules": _rules_fingerprint(), "tokenizer": source[2] if source else None}
        return config_hash(config)

    def describe(self) -> str:
        tok = f"tokens by the {self.tokenizer} tokenizer" if self.tokenizer else "no token counts"
        return f"length ({tok}) and {', '.join(RULE_NAMES)} rules"

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        for part in todo_chunks(examples, skip, self.chunk_size):
            texts = [ex.response for ex in part]
            tok = self.load_tokenizer()
            counts: list[int | None] = (
                [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if tok else [None] * len(part)
            )
            out = []
            for ex, text, n_tokens in zip(part, texts, counts, strict=True):
                flags = check_example(ex)
                row: dict[str, Any] = {"response_chars": len(text), "response_tokens": n_tokens}
                row.update({f"rule_{r}": v for r, v in flags.items()})
                row["rule_flags"] = [r for r, v in flags.items() if v]
                out.append((ex.content_hash, row))
            if advance:
                advance(len(part))
            yield out
