"""Choosing the device and the fast dtype for it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..data.errors import OptionError

DTYPES = ("auto", "float32", "bfloat16", "float16")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX): bf16 then runs ~3x fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("{device}: CUDA is not available on this machine", device=device)
    return device


def choose_dtype(dtype: str, device: str) -> Any:
    """`auto`: bf16 on GPUs that support it and on CPUs with native bf16, fp16 on older GPUs, else fp32."""
    import torch

    if dtype not in DTYPES:
        raise OptionError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
