"""Helpers shared by the workload modules: weights, bound forwards, direct kernel calls."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from workloads.catalog import Shape
from workloads.ir import OPS

ir = torch.ops.cleanpass_ir


def elt(dtype: torch.dtype) -> int:
    """Bytes per element."""
    return torch.empty((), dtype=dtype).element_size()


def gen(shape: Shape, seed: int = 0) -> torch.Generator:
    """A generator seeded from the shape, so a rebuild gives the same tensors."""
    return torch.Generator().manual_seed(seed * 1_000_003 + shape.num_tokens * 131 + shape.hidden)


def randn(shape: tuple[int, ...], dtype: torch.dtype, device: Any, g: torch.Generator,
          scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """A random tensor made on the CPU (reproducible across devices), then moved."""
    return (torch.randn(shape, generator=g) * scale + shift).to(device=device, dtype=dtype)


def norm_weight(hidden: int, dtype: torch.dtype, device: Any, g: torch.Generator) -> nn.Parameter:
    return nn.Parameter(randn((hidden,), dtype, device, g, 0.1, 1.0), requires_grad=False)


def linear_weight(n_in: int, n_out: int, dtype: torch.dtype, device: Any, g: torch.Generator) -> nn.Parameter:
    """``[n_in, n_out]`` scaled so activations keep unit variance."""
    return nn.Parameter(randn((n_in, n_out), dtype, device, g, n_in ** -0.5), requires_grad=False)


class Bound(nn.Module):
    """``core.<method>`` as a module of its own: torch.compile lifts core's weights as inputs."""

    def __init__(self, core: nn.Module, method: str) -> None:
        super().__init__()
        self.core = core
        self.method = method

    def forward(self, *args: Any) -> Any:
        return getattr(self.core, self.method)(*args)


def variants(core: nn.Module) -> tuple[Callable, Callable, Callable]:
    """(fn, native_fn, ideal_fn) for a core module with forward_ir/native/ideal."""
    return Bound(core, "forward_ir"), Bound(core, "forward_native"), Bound(core, "forward_ideal")


def w(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A weight in the activation's dtype (a no-op normally; float64 for the reference)."""
    return t.to(like.dtype)


def inplace(op_name: str, *args: Any) -> None:
    """Call the in-place kernel the lowering would choose for these args (no clones)."""
    impl = OPS[op_name].choose(args)
    if impl is None or not impl.inplace:
        raise RuntimeError(f"no in-place kernel for {op_name} on these arguments")
    impl.kernel(*args)


def out_of_place(op_name: str, *args: Any, in_place: tuple[int, ...] = ()) -> tuple[torch.Tensor, ...]:
    """Call the out-of-place form of the kernel the lowering would choose: the mutated arguments
    at positions ``in_place`` (given up by the caller) are updated in place, the others are
    only read and their results land in fresh buffers. Returns the op's outputs."""
    impl = OPS[op_name].choose(args)
    if impl is None or impl.out_of_place is None:
        raise RuntimeError(f"no out-of-place kernel for {op_name} on these arguments")
    outs = {p: args[p] if p in in_place else torch.empty_like(args[p]) for p in impl.writes}
    impl.out_of_place(*args, *(outs[p] for p in impl.writes))
    return tuple(outs[p] for p in impl.outputs)


def direct(op_name: str, *args: Any) -> Any:
    """Call the kernel the lowering would choose for a functional (not in-place) op."""
    impl = OPS[op_name].choose(args)
    return impl.kernel(*args) if impl is not None else OPS[op_name].functional(*args)


def grid(models: list[str], tokens: list[int]) -> list[Shape]:
    """Every (model, token count) pair as Shapes."""
    from workloads.dims import dims

    return [Shape(t, dims(m).hidden, m) for m in models for t in tokens]


TEST = grid(["tiny-gqa"], [8, 17])
SMOKE = grid(["llama-3.1-8b"], [1, 32])
# Nightly (H100, < 8 min for everything) assumes one dynamic compile per
# (workload, model, dtype, variant), reused across token counts.
NIGHTLY_TOKENS = [1, 512, 4096, 16384]
