"""Language identification of each example, for keeping a data set to the languages it is meant for.

LIMA (Zhou et al., NeurIPS 2023, "LIMA: Less Is More for Alignment") is an English data set; this
scorer lets a recipe keep English (or any set of languages) with `selection.rules.KeepLanguage`.

Back end: `py3langid`, the maintained fork of langid.py (Lui & Baldwin, ACL 2012): a naive Bayes
classifier over byte n-grams for 97 languages, whose model ships inside the package (no download,
no compiler, numpy only), deterministic, and fast enough to run over every row. Probabilities are
normalised (`norm_probs=True`). The text read is the whole example (instructions, inputs and answers)
with code blocks removed: short answers such as "Yes" say little, and code is no natural language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.example import Example
from ..registry import register
from .base import LIGHT, Advance, Chunks, Resources, Skip, config_hash
from .text import prose, todo_chunks, whole_text

MIN_LETTERS = 3  # fewer letters than this outside code: no language to identify


@register("score", "language")
@dataclass
class Language:
    """Columns `lang` (ISO 639-1 code, null when the text has no letters) and `lang_prob`."""

    chunk_size: int = 1024
    resources: ClassVar[Resources] = LIGHT  # no model to load once: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = {
        "lang": None,
        "lang_prob": None,
    }  # null: the text has no letters, not a failure
    name: str = field(default="language", init=False)
    _ident: Any = field(default=None, init=False, repr=False)

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("lang", pa.string()), ("lang_prob", pa.float64())])

    def load(self) -> Any:
        if self._ident is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return self._ident

    def cache_key(self) -> str:
        from importlib.metadata import version

        config = {"scorer": "language/1", "py3langid": version("py3langid"), "text": "whole-example-prose"}
        return config_hash(config)

    def describe(self) -> str:
        return "py3langid (langid.py naive Bayes, 97 languages) over the example's prose"

    def classify(self, text: str) -> tuple[str | None, float | None]:
        body = prose(text)
        if sum(ch.isalpha() for ch in body) < MIN_LETTERS:
            return None, None
        lang, prob = self.load().classify(body)
        return lang, float(prob)

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        for part in todo_chunks(examples, skip, self.chunk_size):
            out = []
            for ex in part:
                lang, prob = self.classify(whole_text(ex))
                out.append((ex.content_hash, {"lang": lang, "lang_prob": prob}))
            if advance:
                advance(len(part))
            yield out
