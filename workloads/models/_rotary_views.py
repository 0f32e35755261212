"""Rotary in place on ``unbind`` views of a batched q/k projection.

``qk = x @ W`` with W ``[2, hidden, q_size]`` gives ``[2, T, q_size]``; ``q, k = qk.unbind(0)``.
q is a contiguous view at offset 0, so its clone has the same layout and the pass may drop it,
letting rotary write straight into qk. Whether that is sound depends on who reads qk later:
``read_base`` also returns qk itself (the un-rotated projections, e.g. for a cache write), so
the write through the view would be visible there. That is the view hole of the reference
("vllm") policy: it looks only at direct users of q.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workloads.catalog import Built, Shape, Workload
from workloads.ir.rotary import rotary_native
from workloads.ir.samples import rope_cache
from workloads.models import _common as C

MAX_POS = 4096


class _Core(nn.Module):
    def __init__(self, shape: Shape, read_base: bool, dtype: torch.dtype, device: Any, g: torch.Generator) -> None:
        super().__init__()
        d = shape.dims
        self.head_dim, self.read_base = d.head_dim, read_base
        self.proj = nn.Parameter(C.randn((2, d.hidden, d.q_size), dtype, device, g, d.hidden ** -0.5),
                                 requires_grad=False)
        self.register_buffer("cos_sin", rope_cache(d.head_dim, MAX_POS, device=device, dtype=dtype))

    def _out(self, q: torch.Tensor, k: torch.Tensor, qk: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (q, k, qk) if self.read_base else (q, k)

    def forward_ir(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        qk = torch.matmul(x, self.proj)
        q, k = qk.unbind(0)
        q, k = C.ir.rotary_embedding(positions, q, k, self.cos_sin, self.head_dim, True)
        return self._out(q, k, qk)

    def forward_native(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        qk = torch.matmul(x, C.w(self.proj, x))
        q, k = qk.unbind(0)
        q, k = rotary_native(positions, q, k, self.cos_sin, self.head_dim, True)
        return self._out(q, k, qk)

    def forward_ideal(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        qk = torch.matmul(x, self.proj)
        q, k = qk.unbind(0)
        if self.read_base:  # the un-rotated projections must survive: rotate into fresh buffers
            q, k = C.out_of_place("rotary_embedding", positions, q, k, self.cos_sin, self.head_dim, True)
        else:
            C.inplace("rotary_embedding", positions, q, k, self.cos_sin, self.head_dim, True)
        return self._out(q, k, qk)


class RotaryViews(Workload):
    read_base: bool = False

    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        g = C.gen(shape)
        core = _Core(shape, self.read_base, dtype, device, g)
        x = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        positions = torch.randint(0, MAX_POS, (shape.num_tokens,), generator=g).to(device)
        fn, native, ideal = C.variants(core)
        return Built(fn, native, ideal, (x, positions))

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        """Projection (read x and W, write qk), rotary reading q and k and writing them once (in
        place, or with ``read_base`` into fresh buffers: the same bytes), cos/sin rows."""
        d, t, e = shape.dims, shape.num_tokens, C.elt(dtype)
        qk = 2 * t * d.q_size
        rot = 2 * qk + t * d.head_dim
        return (t * d.hidden + 2 * d.hidden * d.q_size + qk + rot) * e + 8 * t


SHAPES = {
    "test": C.TEST,
    "smoke": C.grid(["mini-gqa"], [1, 32]),
    "default": C.grid(["mini-gqa"], [32, 512]),
    "nightly": C.grid(["llama-3.1-8b"], C.NIGHTLY_TOKENS),
}
DTYPES = {"nightly": [torch.bfloat16]}
