"""rms_norm: one RMSNorm of an input activation.

The input is not donated, so the lowering's clone must stay: out = clone(x); rms_norm_(out);
cleanpass folds it into the out-of-place kernel, as the ``ideal`` twin does by hand.
Fewest bytes: read x, write out, read the weight.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.catalog import Built, Shape, Workload
from workloads.ir.rms_norm import rms_norm_native
from workloads.models import _common as C


class _Core(nn.Module):
    def __init__(self, hidden: int, eps: float, dtype: torch.dtype, device: Any, g: torch.Generator) -> None:
        super().__init__()
        self.weight = C.norm_weight(hidden, dtype, device, g)
        self.eps = eps

    def forward_ir(self, x: torch.Tensor) -> torch.Tensor:
        return C.ir.rms_norm(x, self.weight, self.eps)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm_native(x, C.w(self.weight, x), self.eps)

    def forward_ideal(self, x: torch.Tensor) -> torch.Tensor:
        """x is the caller's: read it, write a fresh output."""
        return C.out_of_place("rms_norm", x, self.weight, self.eps)[0]


class RmsNorm(Workload):
    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        g = C.gen(shape)
        core = _Core(shape.hidden, shape.dims.eps, dtype, device, g)
        x = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        fn, native, ideal = C.variants(core)
        return Built(fn, native, ideal, (x,))

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        e = C.elt(dtype)
        return 2 * shape.num_tokens * shape.hidden * e + shape.hidden * e


WORKLOAD = RmsNorm(
    name="rms_norm",
    description="RMSNorm of a (non-donated) input activation",
    suite_shapes={
        "test": C.TEST,
        "smoke": C.SMOKE,
        "default": C.grid(["llama-3.1-8b", "llama-3.1-70b"], [1, 32, 512]),
        "nightly": C.grid(["llama-3.1-8b", "llama-3.1-70b"], C.NIGHTLY_TOKENS),
    },
    expected_clones={"lowered": (1, 1), "vllm": (1, 1), "cleanpass": (1, 0)},
)
