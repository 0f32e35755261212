"""Dtype-aware tolerances against the float64 reference: the one table, for tests and harness.

An output element passes when ``|out - ref| <= atol + rtol * |ref|``. The one-op values are
those serving stacks test their kernels with (fp16 atol 1e-2 / rtol 2e-3; bf16, with 8 mantissa
bits, atol 1e-2 and rtol of four bf16 ulps). A workload whose error grows with depth (a chain of
norms, a decoder layer) widens both bounds by its ``tolerance_scale``; garbage still fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def scaled(self, scale: float) -> "Tolerance":
        """Both bounds widened by ``scale`` (a workload's ``tolerance_scale``, >= 1)."""
        return Tolerance(atol=self.atol * scale, rtol=self.rtol * scale)


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float16: Tolerance(atol=1e-2, rtol=2e-3),
    torch.bfloat16: Tolerance(atol=1e-2, rtol=1.6e-2),
    # fp32: chains of norms over 4096+ elements reduce in a different order under Inductor's
    # vectorised reductions; 2.8e-5 was seen on norm_chain. Still far under the 1e-3 a bug gives.
    torch.float32: Tolerance(atol=1e-4, rtol=1e-4),
    torch.float64: Tolerance(atol=1e-10, rtol=1e-10),
}


def tolerance(dtype: torch.dtype, scale: float = 1.0) -> Tolerance:
    """The tolerance for results computed in ``dtype``, widened by ``scale``."""
    try:
        base = TOLERANCES[dtype]
    except KeyError:
        raise KeyError(f"no tolerance registered for {dtype}; add it to TOLERANCES") from None
    return base.scaled(scale)


def max_abs_err(actual: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest absolute difference, in float64."""
    if actual.numel() == 0:
        return 0.0
    return (actual.double() - ref.double()).abs().max().item()


def allclose(actual: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> bool:
    """Whether ``actual`` (in ``dtype``) matches the float64 ``ref`` within tolerance (NaN fails)."""
    tol = tolerance(dtype, scale)
    return actual.shape == ref.shape and torch.allclose(actual.double(), ref.double(),
                                                        atol=tol.atol, rtol=tol.rtol)
