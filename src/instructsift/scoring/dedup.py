"""Per-example fingerprints for exact and near-duplicate detection: a normalised text hash and a MinHash.

Duplicates are a property of pairs, so this scorer only fingerprints each example on its own (and so
is cached like any scorer); `selection.dedup.Dedup` groups the rows by the fingerprints and keeps the
first of each group. MinHash (Broder, 1997, "On the resemblance and containment of documents") over
word n-gram shingles estimates Jaccard similarity; `datasketch` computes the signatures and its LSH
index finds the candidate pairs. Data-curation pipelines in the LIMA line (Zhou et al., NeurIPS 2023,
"LIMA: Less Is More for Alignment", which samples diverse, non-repeating prompts) remove such
near-repeats before sampling.

The text is the whole example (every instruction, input and answer), lower-cased, NFKC-normalised and
cut into words (`\\w+`), so case, spacing and punctuation never make two examples differ. `text_hash`
is a hash of those words; `minhash` the signature of their `ngram`-word shingles (the words as one
shingle when there are fewer).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.errors import OptionError
from ..data.example import Example
from ..registry import register
from .base import LIGHT, Advance, Chunks, Resources, Skip, config_hash
from .text import todo_chunks, whole_text

_WORD = re.compile(r"\w+")
SCHEME = "affine32"  # datasketch >= 2.0's default permutation scheme, stored as uint32


def words(text: str) -> list[str]:
    """Lower-cased NFKC words of `text`."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def shingles(tokens: Sequence[str], n: int) -> list[bytes]:
    """The distinct `n`-word shingles of `tokens`, UTF-8 encoded (all words as one when fewer than n)."""
    if len(tokens) <= n:
        return [" ".join(tokens).encode("utf-8")]
    return list({" ".join(tokens[i : i + n]).encode("utf-8") for i in range(len(tokens) - n + 1)})


@register("score", "minhash")
@dataclass
class MinHashSignature:
    """Columns `text_hash` (normalised exact-duplicate key) and `minhash` (`num_perm` uint32 values)."""

    ngram: int = 3
    num_perm: int = 128
    seed: int = 1
    chunk_size: int = 1024
    resources: ClassVar[Resources] = LIGHT  # no model: plain Ray tasks
    columns: ClassVar[dict[str, str | None]] = {"text_hash": None, "minhash": None}
    name: str = field(default="minhash", init=False)

    def __post_init__(self) -> None:
        if self.ngram < 1 or self.num_perm < 2:
            raise OptionError(f"need ngram >= 1 and num_perm >= 2, got ngram={self.ngram}, num_perm={self.num_perm}")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("text_hash", pa.string()), ("minhash", pa.list_(pa.uint32(), self.num_perm))])

    def cache_key(self) -> str:
        from importlib.metadata import version

        config = {
            "scorer": "minhash/1",
            "datasketch": version("datasketch").split(".")[0],
            "scheme": SCHEME,
            "ngram": self.ngram,
            "num_perm": self.num_perm,
            "seed": self.seed,
        }
        return config_hash(config)

    def describe(self) -> str:
        return f"MinHash ({self.num_perm} permutations, seed {self.seed}) of {self.ngram}-word shingles"

    def score(self, examples: Sequence[Example], skip: Skip = frozenset(), advance: Advance = None) -> Chunks:
        for part in todo_chunks(examples, skip, self.chunk_size):
            from datasketch import MinHash  # imports scipy (seconds): only when there is work

            tokens = [words(whole_text(ex)) for ex in part]
            sigs = MinHash.bulk(
                [shingles(t, self.ngram) for t in tokens], num_perm=self.num_perm, seed=self.seed, scheme=SCHEME
            )
            out = []
            for ex, t, sig in zip(part, tokens, sigs, strict=True):
                key = hashlib.sha256(" ".join(t).encode("utf-8")).hexdigest()[:32]
                out.append((ex.content_hash, {"text_hash": key, "minhash": sig.hashvalues.tolist()}))
            if advance:
                advance(len(part))
            yield out
