"""rms_norm(x, weight|None, eps) -> out: RMS normalisation over the last dim.

Providers: ``triton`` (in place, CUDA) and ``torch`` (in place, any device). The lowering
emits ``clone(x)`` then the in-place kernel; the clone holds the output.
"""
from __future__ import annotations

from typing import Optional

import torch

from workloads.ir import _providers as P
from workloads.ir.registry import Impl, define_op, register_impl, tensor_bytes


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for half types; the native definitions then double as the float64 reference."""
    return torch.promote_types(dtype, torch.float32)


def rms_norm_native(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """fp32 compute (float64 stays float64), weight multiply in fp32, cast back."""
    acc = compute_dtype(x.dtype)
    h = x.to(acc)
    out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.to(acc)
    return out.to(x.dtype)


def rms_norm_reference(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    """float64 semantics the kernels are checked against."""
    h = x.double()
    out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return out * weight.double() if weight is not None else out


def _fake(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> torch.Tensor:
    return x.new_empty(x.shape)


def _read_bytes(args) -> int:  # noqa: ANN001
    """Byte model: read x and the weight once (writes are counted by ``IROp.bytes_moved``)."""
    x, weight = args[0], args[1]
    return tensor_bytes(x) + tensor_bytes(weight)


OP = define_op(
    "rms_norm",
    "(Tensor x, Tensor? weight, float eps) -> Tensor",
    native=rms_norm_native,
    fake=_fake,
    reference=rms_norm_reference,
    activations=(0,),
    read_bytes=_read_bytes,
)


@torch.library.custom_op("cleanpass_kernels::rms_norm_torch_out", mutates_args=("x_out",))
def rms_norm_torch_out(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float, x_out: torch.Tensor) -> None:
    """Torch-written RMSNorm (any device, any strides): x_out <- rms_norm(x); x_out may be x."""
    x_out.copy_(rms_norm_native(x, weight, eps))


@torch.library.custom_op("cleanpass_kernels::rms_norm_torch_", mutates_args=("x",))
def rms_norm_torch_(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    """Torch-written in-place RMSNorm: x <- rms_norm(x)."""
    x.copy_(rms_norm_native(x, weight, eps))


@torch.library.custom_op("cleanpass_kernels::rms_norm_triton_out", mutates_args=("x_out",))
def rms_norm_triton_out(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float, x_out: torch.Tensor) -> None:
    """Triton RMSNorm: x_out <- rms_norm(x); x_out may be x."""
    from workloads.kernels import triton_norm

    triton_norm.rms_norm(x, weight, eps, x_out)


@torch.library.custom_op("cleanpass_kernels::rms_norm_triton_", mutates_args=("x",))
def rms_norm_triton_(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    """Triton in-place RMSNorm: the out-of-place kernel with x as its own output."""
    from workloads.kernels import triton_norm

    triton_norm.rms_norm(x, weight, eps, x)


for _kernel in (rms_norm_torch_, rms_norm_triton_, rms_norm_torch_out, rms_norm_triton_out):
    _kernel.register_fake(P.returns_none)


def _triton_supports(x, weight, eps) -> bool:  # noqa: ANN001
    return P.triton_device_ok(x, weight) and P.rows_ok(x) and (weight is None or weight.is_contiguous())


register_impl("rms_norm", Impl(P.TRITON, torch.ops.cleanpass_kernels.rms_norm_triton_.default,
                               inplace=True, priority=P.PRIORITY[P.TRITON],
                               supports=_triton_supports, writes=(0,), outputs=(0,),
                               out_of_place=torch.ops.cleanpass_kernels.rms_norm_triton_out.default,
                               any_layout=P.rows_ok))
register_impl("rms_norm", Impl(P.TORCH, torch.ops.cleanpass_kernels.rms_norm_torch_.default,
                               inplace=True, priority=P.PRIORITY[P.TORCH], writes=(0,), outputs=(0,),
                               out_of_place=torch.ops.cleanpass_kernels.rms_norm_torch_out.default,
                               any_layout=True))
