"""fused_add_rms_norm(x, residual, weight|None, eps) -> (out, residual_out).

``residual_out = (x + residual)`` in fp32, cast to the input dtype; ``out`` is the RMSNorm of
``residual_out``. The in-place kernels write ``out`` into x and ``residual_out`` into residual,
so the lowering clones both activations.
"""
from __future__ import annotations

from typing import Optional

import torch

from workloads.ir import _providers as P
from workloads.ir.registry import Impl, define_op, register_impl, tensor_bytes
from workloads.ir.rms_norm import compute_dtype, rms_norm_native


def fused_add_rms_norm_native(
    x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The native definition: add in fp32, round to the input dtype, then RMSNorm."""
    acc = compute_dtype(x.dtype)
    r = (x.to(acc) + residual.to(acc)).to(x.dtype)
    return rms_norm_native(r, weight, eps), r


def fused_add_rms_norm_reference(
    x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 semantics (no intermediate rounding)."""
    r = x.double() + residual.double()
    out = r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + eps)
    return (out * weight.double() if weight is not None else out), r


def _fake(x, residual, weight, eps):  # noqa: ANN001
    return x.new_empty(x.shape), x.new_empty(x.shape)


def _read_bytes(args) -> int:  # noqa: ANN001
    """Byte model: read x, residual and the weight once."""
    return sum(tensor_bytes(a) for a in args[:3])


OP = define_op(
    "fused_add_rms_norm",
    "(Tensor x, Tensor residual, Tensor? weight, float eps) -> (Tensor, Tensor)",
    native=fused_add_rms_norm_native,
    fake=_fake,
    reference=fused_add_rms_norm_reference,
    activations=(0, 1),
    read_bytes=_read_bytes,
)


@torch.library.custom_op("cleanpass_kernels::fused_add_rms_norm_torch_out",
                         mutates_args=("x_out", "residual_out"))
def fused_add_rms_norm_torch_out(x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor],
                                 eps: float, x_out: torch.Tensor, residual_out: torch.Tensor) -> None:
    """Torch-written (any device, any strides): residual_out <- x + residual;
    x_out <- rms_norm(residual_out). Either output may be its own input."""
    out, r = fused_add_rms_norm_native(x, residual, weight, eps)
    residual_out.copy_(r)
    x_out.copy_(out)


@torch.library.custom_op("cleanpass_kernels::fused_add_rms_norm_torch_", mutates_args=("x", "residual"))
def fused_add_rms_norm_torch_(
    x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float
) -> None:
    """Torch-written in place: residual <- x + residual; x <- rms_norm(residual)."""
    fused_add_rms_norm_torch_out(x, residual, weight, eps, x, residual)


@torch.library.custom_op("cleanpass_kernels::fused_add_rms_norm_triton_out",
                         mutates_args=("x_out", "residual_out"))
def fused_add_rms_norm_triton_out(x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor],
                                  eps: float, x_out: torch.Tensor, residual_out: torch.Tensor) -> None:
    """Triton, one pass over each row; either output may be its own input."""
    from workloads.kernels import triton_norm

    triton_norm.fused_add_rms_norm(x, residual, weight, eps, x_out, residual_out)


@torch.library.custom_op("cleanpass_kernels::fused_add_rms_norm_triton_", mutates_args=("x", "residual"))
def fused_add_rms_norm_triton_(
    x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float
) -> None:
    """Triton in place: the out-of-place kernel with each input as its own output."""
    from workloads.kernels import triton_norm

    triton_norm.fused_add_rms_norm(x, residual, weight, eps, x, residual)


for _kernel in (fused_add_rms_norm_torch_, fused_add_rms_norm_triton_,
                fused_add_rms_norm_torch_out, fused_add_rms_norm_triton_out):
    _kernel.register_fake(P.returns_none)


def _triton_supports(x, residual, weight, eps) -> bool:  # noqa: ANN001
    return (P.triton_device_ok(x, residual, weight) and P.rows_ok(x) and P.rows_ok(residual)
            and x.shape == residual.shape and (weight is None or weight.is_contiguous()))


register_impl("fused_add_rms_norm", Impl(
    P.TRITON, torch.ops.cleanpass_kernels.fused_add_rms_norm_triton_.default, inplace=True,
    priority=P.PRIORITY[P.TRITON], supports=_triton_supports, writes=(0, 1), outputs=(0, 1),
    out_of_place=torch.ops.cleanpass_kernels.fused_add_rms_norm_triton_out.default,
    any_layout=P.rows_ok))
register_impl("fused_add_rms_norm", Impl(
    P.TORCH, torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_.default, inplace=True,
    priority=P.PRIORITY[P.TORCH], writes=(0, 1), outputs=(0, 1),
    out_of_place=torch.ops.cleanpass_kernels.fused_add_rms_norm_torch_out.default,
    any_layout=True))
