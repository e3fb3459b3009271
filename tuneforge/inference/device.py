"""Device and dtype choice for inference and training processes.

CPU: bfloat16 only where the CPU computes it natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and
slower than float32. GPU: bfloat16 when supported, else float16. `bench/cpu_dtype.py` measures the CPU choice.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from tuneforge.errors import InvalidInput

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInput(f"device {requested!r} was asked for but no CUDA GPU is visible: use --device cpu", field="device")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested != "auto":
        if requested not in DTYPES:
            raise InvalidInput(f"dtype must be one of auto, {', '.join(DTYPES)}; got {requested!r}", field="dtype")
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
