"""fused_add_rms_norm: residual add + RMSNorm of two input activations.

Neither input is donated, so elimination keeps both clones and cleanpass folds them into the
out-of-place kernel (what the ``ideal`` twin calls). Fewest bytes: read x and residual, write
out and residual_out (4T), read the weight.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.catalog import Built, Shape, Workload
from workloads.ir.fused_add_rms_norm import fused_add_rms_norm_native
from workloads.models import _common as C


class _Core(nn.Module):
    def __init__(self, hidden: int, eps: float, dtype: torch.dtype, device: Any, g: torch.Generator) -> None:
        super().__init__()
        self.weight = C.norm_weight(hidden, dtype, device, g)
        self.eps = eps

    def forward_ir(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return C.ir.fused_add_rms_norm(x, residual, self.weight, self.eps)

    def forward_native(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fused_add_rms_norm_native(x, residual, C.w(self.weight, x), self.eps)

    def forward_ideal(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both inputs are the caller's: read them, write fresh outputs."""
        return C.out_of_place("fused_add_rms_norm", x, residual, self.weight, self.eps)


class FusedAddRmsNorm(Workload):
    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        g = C.gen(shape)
        core = _Core(shape.hidden, shape.dims.eps, dtype, device, g)
        x = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        r = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        fn, native, ideal = C.variants(core)
        return Built(fn, native, ideal, (x, r))

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        e = C.elt(dtype)
        return 4 * shape.num_tokens * shape.hidden * e + shape.hidden * e


WORKLOAD = FusedAddRmsNorm(
    name="fused_add_rms_norm",
    description="residual add + RMSNorm of two (non-donated) input activations",
    suite_shapes={
        "test": C.TEST,
        "smoke": C.SMOKE,
        "default": C.grid(["llama-3.1-8b", "llama-3.1-70b"], [1, 32, 512]),
        "nightly": C.grid(["llama-3.1-8b", "qwen2.5-32b", "llama-3.1-70b"], C.NIGHTLY_TOKENS),
    },
    suite_dtypes={"nightly": [torch.bfloat16]},
    expected_clones={"lowered": (2, 2), "vllm": (2, 2), "cleanpass": (2, 0)},
)
