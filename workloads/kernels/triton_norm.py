"""Triton RMSNorm and fused add + RMSNorm, both in place, one program per row.

out = x * rsqrt(mean(x^2) + eps) * weight, computed in fp32. With a residual:
residual <- (x + residual) rounded to the input dtype, x <- RMSNorm(residual).
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_rows(x_ptr, r_ptr, w_ptr, stride_x, stride_r, n_cols, eps,
                   HAS_RES: tl.constexpr, HAS_W: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x_row = x_ptr + row * stride_x
    x = tl.load(x_row + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        r_row = r_ptr + row * stride_r
        s = (x + tl.load(r_row + cols, mask=mask, other=0.0).to(tl.float32)).to(r_ptr.dtype.element_ty)
        tl.store(r_row + cols, s, mask=mask)
        x = s.to(tl.float32)
    var = tl.sum(x * x, axis=0) / n_cols
    y = x * tl.rsqrt(var + eps)
    if HAS_W:
        y = y * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(x_row + cols, y.to(x_ptr.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D row view sharing storage (the caller checked rows are contiguous)."""
    return t if t.dim() == 2 else t.view(-1, t.shape[-1])


def _launch(x: torch.Tensor, residual: Optional[torch.Tensor], weight: Optional[torch.Tensor], eps: float) -> None:
    x2 = _rows(x)
    r2 = _rows(residual) if residual is not None else x2
    n_rows, n_cols = x2.shape
    if n_rows == 0:
        return
    block = triton.next_power_of_2(n_cols)
    num_warps = min(max(block // 256, 1), 16)
    _rms_norm_rows[(n_rows,)](
        x2, r2, weight if weight is not None else x2, x2.stride(0), r2.stride(0), n_cols, eps,
        HAS_RES=residual is not None, HAS_W=weight is not None, BLOCK=block, num_warps=num_warps,
    )


def rms_norm_(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    """x <- RMSNorm(x) in place."""
    _launch(x, None, weight, eps)


def fused_add_rms_norm_(x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    """residual <- x + residual; x <- RMSNorm(residual); both in place."""
    _launch(x, residual, weight, eps)
