"""Dtype-aware tolerances against the float64 reference (one table, shared by tests and harness)."""
from __future__ import annotations

import torch

# (atol, rtol) per dtype. fp16 matches vLLM's kernel tests; bf16 has 8 mantissa bits.
TOLERANCE: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 2e-3),
    torch.bfloat16: (2e-2, 1.6e-2),
    torch.float64: (1e-10, 1e-10),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for results computed in ``dtype``."""
    return TOLERANCE[dtype]


def max_abs_err(actual: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference, in float64."""
    if actual.numel() == 0:
        return 0.0
    return (actual.double() - ref.double()).abs().max().item()


def allclose(actual: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``actual`` (in ``dtype``) matches the float64 ``ref`` within tolerance."""
    atol, rtol = tolerance(dtype)
    return actual.shape == ref.shape and torch.allclose(actual.double(), ref.double(), atol=atol, rtol=rtol)
