"""Shared ``supports`` checks for the provider families."""
from __future__ import annotations

from typing import Any

import torch

from workloads import compat

TRITON = "triton"
TORCH = "torch"
PRIORITY = {TRITON: 20, TORCH: 10}


def triton_device_ok(*tensors: Any) -> bool:
    """Triton runs on CUDA, or on CPU tensors under TRITON_INTERPRET=1 (tests only)."""
    if not compat.triton_available():
        return False
    ts = [t for t in tensors if isinstance(t, torch.Tensor)]
    if not ts:
        return False
    dev = ts[0].device.type
    if any(t.device.type != dev for t in ts):
        return False
    return dev == "cuda" or (dev == "cpu" and compat.triton_interpret())


def rows_ok(x: Any) -> bool:
    """A 2-D (or contiguous) tensor whose rows are contiguous: what the row kernels take."""
    return isinstance(x, torch.Tensor) and x.dim() >= 1 and x.stride(-1) == 1 and (
        x.dim() == 2 or x.is_contiguous()
    )


def is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0
