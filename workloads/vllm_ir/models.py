"""Small models written with vLLM's IR ops, for compiling through `VllmBackend`.

Each `ModelSpec.build(num_tokens, hidden, dtype, seed)` returns the module and its inputs; the
token dim of every input is dynamic (one compile serves every token count). Which inputs the
model donates follows from its `maybe_inplace` calls, which vLLM's pre-grad functionalization
reads; `donated` lists them so checks know which inputs the compiled program may write.

- our norm workloads: `fused_add_rms_norm` (inputs kept: both clones must stay, or be folded),
  `fused_add_rms_norm_donated`, `rms_norm`, `norm_chain` (a residual stream through three
  fused norms, the first functional);
- `qkv_norm_views`: norms on column views of a fused projection, the residual kept;
- `view_of_input`: a fused norm on a view of an input the caller keeps (vLLM's pass ignores the
  view and writes the input: a wrong result it is expected to give);
- shaped like vLLM's own functionalization test models: `vllm_maybe_inplace`, `vllm_functional`,
  `vllm_mixed`, and `vllm_piecewise_block` (split into pieces at a marker op, the way
  `VllmBackend` splits a model at attention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

EPS = 1e-6
SPLIT_MARKER = "cleanpass_vllm::split_marker"


@torch.library.custom_op(SPLIT_MARKER, mutates_args=())
def split_marker(x: Tensor) -> Tensor:
    """Identity that `VllmBackend` is told to split the graph at (a stand-in for attention)."""
    return x.clone()


@split_marker.register_fake
def _split_marker_fake(x: Tensor) -> Tensor:
    return torch.empty_like(x)


def _ops():
    from vllm.ir import ops
    return ops


class _Weights(nn.Module):
    def __init__(self, hidden: int, count: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.norms = nn.ParameterList(
            nn.Parameter(1.0 + 0.1 * torch.randn(hidden, dtype=dtype), requires_grad=False)
            for _ in range(count))


class FusedAddRMSNorm(_Weights):
    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 1, dtype)

    def forward(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        return _ops().fused_add_rms_norm(x, residual, self.norms[0], EPS)


class FusedAddRMSNormDonated(FusedAddRMSNorm):
    def forward(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        return _ops().fused_add_rms_norm.maybe_inplace(x, residual, self.norms[0], EPS)


class RMSNorm(_Weights):
    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 1, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return _ops().rms_norm(x, self.norms[0], EPS)


class NormChain(_Weights):
    """h, r = norm(x + r); then twice h, r = norm(h * 2 + r) on the model's own values."""

    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 3, dtype)

    def forward(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        ops = _ops()
        h, r = ops.fused_add_rms_norm(x, residual, self.norms[0], EPS)
        for weight in self.norms[1:]:
            h, r = ops.fused_add_rms_norm.maybe_inplace(h * 2.0, r, weight, EPS)
        return h, r


class QKVNormViews(_Weights):
    """A fused projection split into column views; a fused norm on q (a strided view of qkv,
    written nowhere else), a plain norm on k, v read last."""

    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 2, dtype)
        self.qkv = nn.Parameter(torch.randn(hidden, 3 * hidden, dtype=dtype) / hidden ** 0.5,
                                requires_grad=False)

    def forward(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        ops = _ops()
        q, k, v = (x @ self.qkv).split(x.shape[-1], dim=-1)
        q, r = ops.fused_add_rms_norm(q, residual, self.norms[0], EPS)
        k = ops.rms_norm(k, self.norms[1], EPS)
        return q * k + v, r


class ViewOfInput(_Weights):
    """A fused norm on per-half rows of x viewed (T, H) -> (2T, H/2), x kept by the caller."""

    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden // 2, 1, dtype)

    def forward(self, x: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
        half = x.shape[-1] // 2
        h, r = _ops().fused_add_rms_norm(x.view(-1, half), residual.view(-1, half),
                                         self.norms[0], EPS)
        return h.view(x.shape) + x, r.view(x.shape)


class VllmMaybeInplace(_Weights):
    """Two `maybe_inplace` calls: x and both residuals donated."""

    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 2, dtype)

    def forward(self, x: Tensor, residual1: Tensor, residual2: Tensor) -> tuple[Tensor, ...]:
        ops = _ops()
        h1, r1 = ops.fused_add_rms_norm.maybe_inplace(x, residual1, self.norms[0], EPS)
        h2, r2 = ops.fused_add_rms_norm.maybe_inplace(h1, residual2, self.norms[1], EPS)
        return h2, r1, r2


class VllmFunctional(VllmMaybeInplace):
    """The same two norms, functional: nothing donated."""

    def forward(self, x: Tensor, residual1: Tensor, residual2: Tensor) -> tuple[Tensor, ...]:
        ops = _ops()
        h1, r1 = ops.fused_add_rms_norm(x, residual1, self.norms[0], EPS)
        h2, r2 = ops.fused_add_rms_norm(h1, residual2, self.norms[1], EPS)
        return h2, r1, r2


class VllmMixed(VllmMaybeInplace):
    """`maybe_inplace` then functional on a value that is also returned."""

    def forward(self, x: Tensor, residual1: Tensor, residual2: Tensor) -> tuple[Tensor, ...]:
        ops = _ops()
        h1, r1 = ops.fused_add_rms_norm.maybe_inplace(x, residual1, self.norms[0], EPS)
        h2, r2 = ops.fused_add_rms_norm(h1, residual2, self.norms[1], EPS)
        return h1, h2, r1, r2


class VllmPiecewiseBlock(_Weights):
    """Projection, fused norm (residual donated), split, MLP, fused norm: two pieces."""

    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__(hidden, 2, dtype)
        scale = hidden ** -0.5
        self.proj = nn.Parameter(torch.randn(hidden, hidden, dtype=dtype) * scale, requires_grad=False)
        self.up = nn.Parameter(torch.randn(hidden, 2 * hidden, dtype=dtype) * scale, requires_grad=False)
        self.down = nn.Parameter(torch.randn(2 * hidden, hidden, dtype=dtype) * scale, requires_grad=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ops = _ops()
        h, r = ops.fused_add_rms_norm.maybe_inplace(x @ self.proj, x, self.norms[0], EPS)
        h = torch.ops.cleanpass_vllm.split_marker(h)
        h = torch.nn.functional.silu(h @ self.up) @ self.down
        return ops.fused_add_rms_norm.maybe_inplace(h, r, self.norms[1], EPS)


@dataclass(frozen=True)
class ModelSpec:
    """How to build one model and what its compile must look like."""

    name: str
    make: Callable[[int, torch.dtype], nn.Module]
    inputs: int                           # activations of shape (tokens, hidden)
    donated: tuple[int, ...] = ()         # inputs the model donates (maybe_inplace)
    splitting_ops: tuple[str, ...] = ()
    #: clone passes expected to compute wrong results here (a known hole of the pass)
    expected_wrong: tuple[str, ...] = field(default=())
    #: whether every op runs our provider or vLLM's native math, so the compiled program must
    #: match the eager native model bit for bit (matmuls or generated pointwise code: tolerance)
    exact: bool = True

    def build(self, num_tokens: int, hidden: int, dtype: torch.dtype, seed: int = 0,
              device: str = "cpu") -> tuple[nn.Module, tuple[Tensor, ...]]:
        """The model and its inputs, drawn on the CPU from `seed` (the same values on any device)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = self.make(hidden, dtype).eval().to(device)
        inputs = tuple(torch.randn(num_tokens, hidden, generator=generator).to(device=device, dtype=dtype)
                       for _ in range(self.inputs))
        return model, inputs


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("fused_add_rms_norm", FusedAddRMSNorm, 2),
    ModelSpec("fused_add_rms_norm_donated", FusedAddRMSNormDonated, 2, donated=(0, 1)),
    ModelSpec("rms_norm", RMSNorm, 1),
    ModelSpec("norm_chain", NormChain, 2, exact=False),
    ModelSpec("qkv_norm_views", QKVNormViews, 2, exact=False),
    ModelSpec("view_of_input", ViewOfInput, 2, expected_wrong=("vllm",), exact=False),
    ModelSpec("vllm_maybe_inplace", VllmMaybeInplace, 3, donated=(0, 1, 2)),
    ModelSpec("vllm_functional", VllmFunctional, 3),
    ModelSpec("vllm_mixed", VllmMixed, 3, donated=(0, 1)),
    ModelSpec("vllm_piecewise_block", VllmPiecewiseBlock, 1, donated=(0,),
              splitting_ops=(SPLIT_MARKER,), exact=False),
)}
