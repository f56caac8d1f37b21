"""Helpers shared by the test modules: the `instructsift` command (in this process or a fresh one), and the tiny random
Llama models (their session-wide fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "instructsift.cli"]


def cli_command(*args: object) -> list[str]:
    """The command line of `instructsift ARGS` as this interpreter runs it (for Popen)."""
    return [*CLI, *map(str, args)]


class Run(subprocess.CompletedProcess):
    """A finished `instructsift ARGS`: `returncode`, `stdout`, `stderr`, and `output`, both streams as a
    terminal shows them (in this process: interleaved as written; in a subprocess: stdout, then stderr)."""

    def __init__(self, args: list[str], returncode: int, stdout: str, stderr: str, output: str | None = None):
        super().__init__(args, returncode, stdout, stderr)
        self.output = stdout + stderr if output is None else output


def cli(
    *args: object,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    width: int | None = None,
) -> Run:
    """`instructsift ARGS`: its exit code, stdout and stderr, as a user's shell gets them.

    Run in this process through the command's own entry (typer's runner: the same error handling, exit codes
    and output streams), which saves each call the ~4 s of importing torch and transformers that a fresh
    interpreter pays. With `env` (the whole environment) it runs in a subprocess, as `cli_subprocess` does
    (a test that only adds a variable sets it with monkeypatch.setenv and stays in this process).
    `check`: a non-zero exit fails the test with the command and its stderr. `width`: the terminal's width in
    columns that the help is laid out for (in this process only)."""
    if env is not None:
        if width is not None:
            raise ValueError("width= is for a run in this process: give COLUMNS in env instead")
        return cli_subprocess(*args, check=check, env=env, timeout=timeout)
    from typer.testing import CliRunner

    from instructsift.cli import app

    argv = [str(a) for a in args]
    extra = {} if width is None else {"terminal_width": width}
    result = CliRunner().invoke(app, argv, prog_name="instructsift", **extra)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # the command's guard turns every exception into an exit code: this is a bug
    proc = Run(["instructsift", *argv], result.exit_code, result.stdout, result.stderr, result.output)
    if check and proc.returncode != 0:
        raise AssertionError(f"instructsift {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def cli_subprocess(
    *args: object, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 600
) -> Run:
    """`instructsift ARGS` in a fresh interpreter (for what only a process shows: its imports, signals, an
    environment of its own). `env`: the whole environment (default: this process's, so PYTHONPATH and
    INSTRUCTSIFT_CACHE carry over)."""
    cmd = cli_command(*args)
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ if env is None else env), timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stderr}")
    return Run(cmd, proc.returncode, proc.stdout, proc.stderr)


def bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on `texts` (seconds), `<|endoftext|>` as EOS and padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=special[0], pad_token=special[0])


def tiny_llama(path: Path, tok, **config) -> Path:
    """A 2-layer, 32-wide causal Llama with random weights (seed 0) and `tok`, saved as a model folder.
    `config` overrides LlamaConfig's fields."""
    from transformers import LlamaConfig, LlamaForCausalLM

    base = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, eos_token_id=tok.eos_token_id)  # fmt: skip
    return saved_model(path, lambda: LlamaForCausalLM(LlamaConfig(**{**base, **config})), tok)


def saved_model(path: Path, build: Callable[[], Any], tok: Any) -> Path:
    """`build()`'s model, its random weights drawn after `torch.manual_seed(0)`, saved with `tok` as a model
    folder at `path` (the hub's layout)."""
    import torch

    torch.manual_seed(0)
    build().save_pretrained(path)
    tok.save_pretrained(path)
    return path
