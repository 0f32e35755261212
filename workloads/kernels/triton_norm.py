"""Triton RMSNorm and fused add + RMSNorm, one program per row, in place or out of place.

out = x * rsqrt(mean(x^2) + eps) * weight, computed in fp32. With a residual:
residual_out <- (x + residual) rounded to the input dtype, out <- RMSNorm(residual_out).
Inputs and outputs have their own pointers and strides (read at run time), so one kernel
serves both forms: in place passes the input as its own output; strided and offset row
views work either way. Each row is loaded completely before anything is stored, which is
what makes ``out is x`` safe.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_rows(x_ptr, r_ptr, w_ptr, xo_ptr, ro_ptr,
                   sx_row, sx_col, sr_row, sr_col, sxo_row, sxo_col, sro_row, sro_col,
                   n_cols, eps, HAS_RES: tl.constexpr, HAS_W: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * sx_row + cols * sx_col, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        r = tl.load(r_ptr + row * sr_row + cols * sr_col, mask=mask, other=0.0).to(tl.float32)
        s = (x + r).to(ro_ptr.dtype.element_ty)
        tl.store(ro_ptr + row * sro_row + cols * sro_col, s, mask=mask)
        x = s.to(tl.float32)
    var = tl.sum(x * x, axis=0) / n_cols
    y = x * tl.rsqrt(var + eps)
    if HAS_W:
        y = y * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(xo_ptr + row * sxo_row + cols * sxo_col, y.to(xo_ptr.dtype.element_ty), mask=mask)


def rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D row view sharing storage (``supports`` checked the leading dims collapse)."""
    return t if t.dim() == 2 else t.view(-1, t.shape[-1])


def input_rows(t: torch.Tensor) -> torch.Tensor:
    """2-D rows of an input: a view when the leading dims collapse, else a copy (read only)."""
    return t if t.dim() == 2 else t.reshape(-1, t.shape[-1])


def _launch(x: torch.Tensor, residual: Optional[torch.Tensor], weight: Optional[torch.Tensor], eps: float,
            out: torch.Tensor, residual_out: Optional[torch.Tensor]) -> None:
    x2, o2 = input_rows(x), rows(out)
    r2 = input_rows(residual) if residual is not None else x2
    ro2 = rows(residual_out) if residual_out is not None else o2
    n_rows, n_cols = x2.shape
    if n_rows == 0:
        return
    block = triton.next_power_of_2(n_cols)
    num_warps = min(max(block // 256, 1), 16)
    _rms_norm_rows[(n_rows,)](
        x2, r2, weight if weight is not None else x2, o2, ro2,
        *x2.stride(), *r2.stride(), *o2.stride(), *ro2.stride(), n_cols, eps,
        HAS_RES=residual is not None, HAS_W=weight is not None, BLOCK=block, num_warps=num_warps,
    )


def rms_norm(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float, out: torch.Tensor) -> None:
    """out <- RMSNorm(x); ``out`` may be ``x``."""
    _launch(x, None, weight, eps, out, None)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float,
                       out: torch.Tensor, residual_out: torch.Tensor) -> None:
    """residual_out <- x + residual; out <- RMSNorm(residual_out); either output may be its input."""
    _launch(x, residual, weight, eps, out, residual_out)
