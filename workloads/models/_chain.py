"""The residual chain shared by ``norm_chain`` and ``donated_chain``.

Each layer: ``h, residual = fused_add_rms_norm(h, residual, w_i); h = h @ W_i``. Norm weights are
parameters, projection weights frozen buffers. With ``donate`` every norm is called through its
``maybe_inplace`` overload, so the layer-0 inputs are given up too.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.catalog import Built, Shape, Workload
from workloads.ir.fused_add_rms_norm import fused_add_rms_norm_native
from workloads.models import _common as C

LAYERS = 3


class ChainCore(nn.Module):
    def __init__(self, layers: int, hidden: int, eps: float, donate: bool, dtype: torch.dtype,
                 device: Any, g: torch.Generator) -> None:
        super().__init__()
        self.eps, self.donate, self.layers = eps, donate, layers
        self.norms = nn.ParameterList([C.norm_weight(hidden, dtype, device, g) for _ in range(layers)])
        for i in range(layers):
            self.register_buffer(f"proj{i}", C.linear_weight(hidden, hidden, dtype, device, g).data)

    def _proj(self, i: int) -> torch.Tensor:
        return getattr(self, f"proj{i}")

    def forward_ir(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        op = C.ir.fused_add_rms_norm.maybe_inplace if self.donate else C.ir.fused_add_rms_norm.default
        h = x
        for i in range(self.layers):
            h, residual = op(h, residual, self.norms[i], self.eps)
            h = h @ self._proj(i)
        return h, residual

    def forward_native(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        for i in range(self.layers):
            h, residual = fused_add_rms_norm_native(h, residual, C.w(self.norms[i], h), self.eps)
            h = h @ C.w(self._proj(i), h)
        return h, residual

    def forward_ideal(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """In place on donated inputs and on the chain's own buffers; layer 0 of a chain whose
        inputs the caller keeps reads them and writes fresh buffers."""
        h = x
        for i in range(self.layers):
            if i == 0 and not self.donate:
                h, residual = C.out_of_place("fused_add_rms_norm", h, residual, self.norms[i], self.eps)
            else:
                C.inplace("fused_add_rms_norm", h, residual, self.norms[i], self.eps)
            h = h @ self._proj(i)
        return h, residual


class Chain(Workload):
    donate: bool = False

    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        g = C.gen(shape)
        core = ChainCore(LAYERS, shape.hidden, shape.dims.eps, self.donate, dtype, device, g)
        x = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        r = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        fn, native, ideal = C.variants(core)
        donated = (0, 1) if self.donate else ()
        return Built(fn, native, ideal, (x, r), donated=donated, ideal_mutates=donated)

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        """Per layer: fused norm 4T + weight; projection reads h and W, writes h (2T + H^2)."""
        e, t, h = C.elt(dtype), shape.num_tokens, shape.hidden
        return LAYERS * (6 * t * h + h + h * h) * e


SHAPES = {
    "test": C.TEST,
    "smoke": C.SMOKE,
    "default": C.grid(["llama-3.1-8b"], [1]) + C.grid(["llama-3.2-1b"], [32, 256]),
    "nightly": C.grid(["llama-3.1-8b"], C.NIGHTLY_TOKENS),
}
DTYPES = {"nightly": [torch.bfloat16]}
