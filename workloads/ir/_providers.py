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
    """A tensor whose leading dims collapse into rows without a copy (any row and column
    strides, any offset): what the row kernels take, reading strides at run time."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        return False
    if x.dim() == 2:
        return True
    try:
        x.view(-1, x.shape[-1])
    except RuntimeError:
        return False
    return True


def is_2d(x: Any) -> bool:
    """A 2-D tensor with any strides and offset: what the rotary kernels take."""
    return isinstance(x, torch.Tensor) and x.dim() == 2


def returns_none(*args: Any) -> None:
    """The fake kernel of an op that only mutates its arguments."""
    return None


def is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0
