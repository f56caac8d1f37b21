"""An OFFLINE STAND-IN for InstructMining's reward model: a linear Bradley-Terry head on sentence embeddings,
trained by instructsift on preference pairs. It is NOT the paper's reward model.

InstructMining (Cao et al., 2023, arXiv:2307.06290) scores each pair with OpenAssistant's Pythia-1.4B
reward model, which cannot be downloaded here. This stand-in embeds the response (the last answer) with
the embedded all-MiniLM-L6-v2 and learns a weight vector w such that sigmoid(w . (v_chosen - v_rejected))
is the probability that the chosen answer is preferred: scikit-learn's LogisticRegression without an
intercept on the pairs' differences (each pair also mirrored, label 0). An example's score is w . v. Only
the response is embedded: a pair shares its prompt, which cancels in a linear head, and the embedded
encoder reads 256 tokens, which a long shared conversation would fill before the answers differ. Its column is `reward_standin`, never `reward`, so a rule fitted on it says
so, and the paper's rule (on `reward`) cannot take it.

Preference files: Anthropic HH-RLHF JSON Lines (`chosen`/`rejected` transcripts of "Human:"/"Assistant:"
turns, gzip or not) and LLaMA-Factory's DPO JSON (`conversations`, `chosen`, `rejected`), e.g. the two in
../shared/data/preference. The trained head is cached under `<cache>/artifacts/`, keyed by the file's
bytes, the encoder's fingerprint and the settings.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.errors import OptionError
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..registry import FilePath, ModelRef, register
from .base import MODEL, Advance, Chunks, Resources, Skip, config_hash
from .text import todo_chunks

_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _hh_turns(transcript: str) -> list[str]:
    """The turn texts of an HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...")."""
    parts = _TURN.split(transcript if transcript.startswith("\n\n") else "\n\n" + transcript)
    return [p.strip() for p in parts[2::2]]


def read_pairs(path: str | Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(chosen response, rejected response) pairs: the last answer of each side."""
    p = Path(path)
    if not p.is_file():
        raise OptionError(f"{path}: no such preference file")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        text = f.read()
    pairs: list[tuple[str, str]] = []
    if text.lstrip().startswith("["):  # LLaMA-Factory DPO JSON
        for i, rec in enumerate(json.loads(text)):
            try:
                pairs.append((rec["chosen"]["value"], rec["rejected"]["value"]))
            except (KeyError, TypeError):
                raise OptionError(f"{path}, record {i + 1}: needs conversations, chosen and rejected") from None
    else:  # HH-RLHF JSON Lines
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                pairs.append((_hh_turns(rec["chosen"])[-1], _hh_turns(rec["rejected"])[-1]))
            except (ValueError, KeyError, TypeError):
                raise OptionError(f"{path}, line {n}: needs chosen and rejected transcripts") from None
    pairs = [(c, r) for c, r in pairs if c != r]
    return pairs[:limit] if limit else pairs


@register("score", "reward_standin")
@dataclass
class RewardStandin:
    """OFFLINE STAND-IN, not the paper's reward model: w . embedding of the response, w a Bradley-Terry
    head trained on the preference pairs in `preference` (column `reward_standin`)."""

    resources: ClassVar[Resources] = MODEL  # its model loaded once per Ray actor, a GPU each where there are GPUs

    preference: FilePath
    limit: int | None = None  # pairs used for training (the file's first ones) [all]
    C: float = 1.0  # inverse L2 strength of the logistic regression
    encoder: ModelRef = EMBEDDED
    batch_size: int = 64
    chunk_size: int = 512
    columns: ClassVar[dict[str, str | None]] = {
        "reward_standin": "reward_standin_reason",
        "reward_standin_reason": None,
    }
    name: str = field(default="reward_standin", init=False)
    _embed: Any = field(default=None, init=False, repr=False)
    _w: Any = field(default=None, init=False, repr=False)
    _key: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.C <= 0 or (self.limit is not None and self.limit < 2):
            raise OptionError("C must be > 0 and limit at least 2")
        if not Path(self.preference).is_file():
            raise OptionError(f"{self.preference}: no such preference file")

    @property
    def schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("reward_standin", pa.float64()), ("reward_standin_reason", pa.string())])

    def embedder(self) -> Any:
        if self._embed is None:
            from .embed import Embed

            self._embed = Embed(encoder=self.encoder, text="response", batch_size=self.batch_size)
        return self._embed

    def head(self) -> np.ndarray:
        """The trained weight vector (trained once, then read from the cache)."""
        if self._w is not None:
            return self._w
        from ..atomic import write_text
        from ..models import cache_root

        emb = self.embedder()
        config = {"head": "reward_standin/2", "data": hashlib.sha256(Path(self.preference).read_bytes()).hexdigest(),
                  "encoder": emb.cache_key(), "limit": self.limit, "C": self.C}  # fmt: skip
        self._key = config_hash(config)
        path = cache_root() / "artifacts" / f"reward-standin-{self._key}.json"
        if path.exists():
            self._w = np.asarray(json.loads(path.read_text())["w"], dtype=np.float64)
            return self._w
        w, accuracy, n = train_head(read_pairs(self.preference, self.limit), emb, self.C)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({**config, "pairs": n, "train_accuracy": accuracy, "w": w.tolist()}))
        self._w = w
        return w

    def cache_key(self) -> str:
        self.head()
        return self._key

    def describe(self) -> str:
        self.head()
        return f"OFFLINE STAND-IN reward (not the paper's model): Bradley-Terry head on {self.preference}"

    def score(self, examples: Sequence[Example], skip: Skip, advance: Advance = None) -> Chunks:
        w, emb = self.head(), self.embedder()
        for part in todo_chunks(examples, skip, self.chunk_size):
            texts = emb.texts(part)
            full = [i for i, t in enumerate(texts) if t.strip()]
            values = emb.encode([texts[i] for i in full]).astype(np.float64) @ w
            at = dict(zip(full, values.tolist(), strict=True))
            yield [
                (ex.content_hash, {"reward_standin": at[i], "reward_standin_reason": None})
                if i in at
                else (ex.content_hash, {"reward_standin": None, "reward_standin_reason": "the response is empty"})
                for i, ex in enumerate(part)
            ]
            if advance:
                advance(len(part))


def train_head(pairs: Sequence[tuple[str, str]], embed: Any, C: float = 1.0) -> tuple[np.ndarray, float, int]:
    """(w, training pair accuracy, pairs): logistic regression without intercept on v_chosen - v_rejected."""
    from sklearn.linear_model import LogisticRegression

    if len(pairs) < 2:
        raise OptionError(f"training the stand-in reward head needs at least 2 preference pairs, got {len(pairs)}")
    V = embed.encode([t for pair in pairs for t in pair]).astype(np.float64)
    D = V[0::2] - V[1::2]
    X = np.vstack([D, -D])
    y = np.r_[np.ones(len(D)), np.zeros(len(D))]
    model = LogisticRegression(fit_intercept=False, C=C, max_iter=1000).fit(X, y)
    w = model.coef_[0]
    return w, float(np.mean(D @ w > 0)), len(pairs)


__all__ = ["RewardStandin", "read_pairs", "train_head"]
