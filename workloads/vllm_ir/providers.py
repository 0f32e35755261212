"""A CPU provider for vLLM's `rms_norm` and `fused_add_rms_norm` IR ops, written in torch.

vLLM's own providers (`vllm_c`, ...) need CUDA; on CPU only `native` is supported, and `native`
is functional, so lowering leaves no clone to decide. This provider is what a kernel author
would write for an in-place kernel: `fused_add_rms_norm` runs in place on its activations
(`inplace=True`, so vLLM's lowering clones them), and `rms_norm` writes a fresh output.
Both kernels compute exactly what vLLM's `native` implementation computes (they call it), so
compiled results can be compared with the eager native model bit for bit.

The kernels declare their facts to cleanpass through its public registration, as any provider
outside this repository would: the in-place kernel has an out-of-place form (folding), and
every kernel reads strides and storage offsets at run time (removal of clones of views), and
its only effects are the writes its schema annotates (a call writing only dead clones is dead).
`register()` is idempotent.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import Tensor

import cleanpass

PROVIDER = "cleanpass_torch"
LIBRARY = "cleanpass_vllm"


def _native():
    from vllm import ir
    return ir.ops.fused_add_rms_norm.impls["native"].impl_fn, ir.ops.rms_norm.impls["native"].impl_fn


@torch.library.custom_op(f"{LIBRARY}::fused_add_rms_norm_", mutates_args=("x", "x_residual"))
def fused_add_rms_norm_inplace(x: Tensor, x_residual: Tensor, weight: Optional[Tensor],
                               epsilon: float) -> None:
    """x <- RMSNorm(x + x_residual) * weight, x_residual <- x + x_residual (any strides)."""
    out, residual = _native()[0](x, x_residual, weight, epsilon)
    x_residual.copy_(residual)
    x.copy_(out)


@torch.library.custom_op(f"{LIBRARY}::fused_add_rms_norm_out", mutates_args=("out", "residual_out"))
def fused_add_rms_norm_out(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
                           out: Tensor, residual_out: Tensor) -> None:
    """The out-of-place form: the results go to `out` and `residual_out` (either may be its
    own input, so one kernel serves calls where only some activations are folded)."""
    normed, residual = _native()[0](x, x_residual, weight, epsilon)
    residual_out.copy_(residual)
    out.copy_(normed)


@torch.library.custom_op(f"{LIBRARY}::rms_norm_out", mutates_args=("out",))
def rms_norm_out(x: Tensor, weight: Optional[Tensor], epsilon: float, out: Tensor) -> None:
    """out <- RMSNorm(x) * weight (any strides)."""
    out.copy_(_native()[1](x, weight, epsilon))


for _kernel in (fused_add_rms_norm_inplace, fused_add_rms_norm_out, rms_norm_out):
    _kernel.register_fake(lambda *args, **kwargs: None)


def _fused_supported(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
                     variance_size: int | None = None) -> bool:
    return variance_size is None


def _rms_supported(x: Tensor, weight: Optional[Tensor], epsilon: float,
                   variance_size: int | None = None) -> bool:
    return variance_size is None


def declare_facts() -> None:
    """Tell cleanpass what the kernels do beyond their schemas (public registration only)."""
    cleanpass.register_out_of_place(
        torch.ops.cleanpass_vllm.fused_add_rms_norm_.default,
        torch.ops.cleanpass_vllm.fused_add_rms_norm_out.default,
        outputs={"x": "out", "x_residual": "residual_out"}, any_input_layout=True)
    for kernel in (torch.ops.cleanpass_vllm.fused_add_rms_norm_.default,
                   torch.ops.cleanpass_vllm.rms_norm_out.default):
        cleanpass.register_any_layout(kernel)
        cleanpass.register_effects_known(kernel)  # writes its annotated arguments, nothing else


@functools.lru_cache(1)
def register() -> str:
    """Register the provider with vLLM's IR ops and declare its facts; returns its name."""
    from vllm import ir

    @ir.ops.fused_add_rms_norm.register_impl(PROVIDER, supports_args=_fused_supported, inplace=True)
    def fused_add_rms_norm(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
                           variance_size: int | None = None) -> tuple[Tensor, Tensor]:
        torch.ops.cleanpass_vllm.fused_add_rms_norm_(x, x_residual, weight, epsilon)
        return x, x_residual

    @ir.ops.rms_norm.register_impl(PROVIDER, supports_args=_rms_supported)
    def rms_norm(x: Tensor, weight: Optional[Tensor], epsilon: float,
                 variance_size: int | None = None) -> Tensor:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        torch.ops.cleanpass_vllm.rms_norm_out(x, weight, epsilon, out)
        return out

    declare_facts()
    return PROVIDER
