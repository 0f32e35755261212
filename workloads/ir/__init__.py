"""The IR: ops in ``torch.ops.cleanpass_ir`` and their providers (see ``registry``)."""
from workloads.ir import fused_add_rms_norm, rms_norm, rotary, silu_and_mul  # noqa: F401
from workloads.ir.registry import NATIVE, OPS, Impl, IROp, ir_op_of, is_maybe_inplace

__all__ = ["NATIVE", "OPS", "Impl", "IROp", "ir_op_of", "is_maybe_inplace"]
