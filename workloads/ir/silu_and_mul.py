"""silu_and_mul(x) -> out: silu(first half of the last dim) * second half.

The output is half the input's size, so no provider works in place: both kernels are
functional (they allocate the output) and the lowering emits no clone for this op.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from workloads.ir import _providers as P
from workloads.ir.rms_norm import compute_dtype
from workloads.ir.registry import Impl, define_op, register_impl, tensor_bytes


def silu_and_mul_native(x: torch.Tensor) -> torch.Tensor:
    """fp32 compute, cast back."""
    d = x.shape[-1] // 2
    acc = compute_dtype(x.dtype)
    return (F.silu(x[..., :d].to(acc)) * x[..., d:].to(acc)).to(x.dtype)


def silu_and_mul_reference(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1] // 2
    return F.silu(x[..., :d].double()) * x[..., d:].double()


def _fake(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], x.shape[-1] // 2))


def _read_bytes(args) -> int:  # noqa: ANN001
    """Byte model: read x once (the output, half its size, is the write)."""
    return tensor_bytes(args[0])


OP = define_op(
    "silu_and_mul",
    "(Tensor x) -> Tensor",
    native=silu_and_mul_native,
    fake=_fake,
    reference=silu_and_mul_reference,
    activations=(0,),
    read_bytes=_read_bytes,
)


@torch.library.custom_op("cleanpass_kernels::silu_and_mul_torch", mutates_args=())
def silu_and_mul_torch(x: torch.Tensor) -> torch.Tensor:
    """Torch-written kernel (any device), writing straight into a fresh output."""
    d = x.shape[-1] // 2
    out = torch.empty((*x.shape[:-1], d), dtype=x.dtype, device=x.device)
    acc = compute_dtype(x.dtype)
    torch.mul(F.silu(x[..., :d].to(acc)), x[..., d:].to(acc), out=out)
    return out


@torch.library.custom_op("cleanpass_kernels::silu_and_mul_triton", mutates_args=())
def silu_and_mul_triton(x: torch.Tensor) -> torch.Tensor:
    """Triton kernel; allocates the output."""
    from workloads.kernels import triton_act

    return triton_act.silu_and_mul(x)


silu_and_mul_torch.register_fake(_fake)
silu_and_mul_triton.register_fake(_fake)


def _triton_supports(x) -> bool:  # noqa: ANN001
    return P.triton_device_ok(x) and P.rows_ok(x) and x.shape[-1] % 2 == 0


register_impl("silu_and_mul", Impl(P.TRITON, torch.ops.cleanpass_kernels.silu_and_mul_triton.default,
                                   inplace=False, priority=P.PRIORITY[P.TRITON],
                                   supports=_triton_supports))
register_impl("silu_and_mul", Impl(P.TORCH, torch.ops.cleanpass_kernels.silu_and_mul_torch.default,
                                   inplace=False, priority=P.PRIORITY[P.TORCH]))
