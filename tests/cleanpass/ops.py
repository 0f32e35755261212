"""Tiny mutable custom ops for the pass's tests: in-place "kernels" like a lowering emits."""
from __future__ import annotations

import torch

import cleanpass

LIB = "cleanpass_test"


@torch.library.custom_op(f"{LIB}::scale_", mutates_args=("x",))
def scale_(x: torch.Tensor, factor: float) -> None:
    """Writes x in place (positional `Tensor(a!)`)."""
    x.mul_(factor)


_lib = torch.library.Library(LIB, "FRAGMENT")
# custom_op refuses keyword-only tensors, so this one is defined the low-level way.
_lib.define("write_kw(Tensor x, *, Tensor(a!) out) -> ()")


def _write_kw(x: torch.Tensor, *, out: torch.Tensor) -> None:
    """Writes `out` through a keyword-only argument: out = out * 0.25 + x."""
    out.mul_(0.25).add_(x)


_lib.impl("write_kw", _write_kw, "CompositeExplicitAutograd")
_lib.impl("write_kw", lambda x, *, out: None, "Meta")


@torch.library.custom_op(f"{LIB}::write_list", mutates_args=("xs",))
def write_list(xs: list[torch.Tensor]) -> None:
    """Writes every tensor of a list (`Tensor(a!)[]`)."""
    for x in xs:
        x.add_(1.5)


@torch.library.custom_op(f"{LIB}::fused_add_norm_", mutates_args=("x", "residual"))
def fused_add_norm_(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor) -> None:
    """The shape of fused add + RMSNorm in place: residual += x; x = norm(residual) * weight."""
    residual.add_(x)
    variance = residual.float().pow(2).mean(-1, keepdim=True)
    x.copy_((residual.float() * torch.rsqrt(variance + 1e-6)).to(x.dtype) * weight)


@torch.library.custom_op(f"{LIB}::scaled", mutates_args=())
def scaled(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The functional twin of scale_, for lowering tests."""
    return x * factor


for _op in (scale_, write_list, fused_add_norm_):
    _op.register_fake(lambda *args, **kwargs: None)


@scaled.register_fake
def _(x: torch.Tensor, factor: float) -> torch.Tensor:
    return torch.empty_like(x)


ops = torch.ops.cleanpass_test


# Out-of-place forms for the folding tests (cleanpass.fold): the in-place op's arguments, then
# one output per mutated argument; an output may be its own input.
@torch.library.custom_op(f"{LIB}::scale_out", mutates_args=("x_out",))
def scale_out(x: torch.Tensor, factor: float, x_out: torch.Tensor) -> None:
    x_out.copy_(x * factor)


@torch.library.custom_op(f"{LIB}::fused_add_norm_out", mutates_args=("x_out", "residual_out"))
def fused_add_norm_out(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       x_out: torch.Tensor, residual_out: torch.Tensor) -> None:
    total = residual + x
    variance = total.float().pow(2).mean(-1, keepdim=True)
    x_out.copy_((total.float() * torch.rsqrt(variance + 1e-6)).to(x.dtype) * weight)
    residual_out.copy_(total)


@torch.library.custom_op(f"{LIB}::scale_head_", mutates_args=("x",))
def scale_head_(x: torch.Tensor, n: int) -> None:
    """Writes only the first n columns (a partial rotary's shape)."""
    x[..., :n].mul_(2.0)


@torch.library.custom_op(f"{LIB}::scale_head_out", mutates_args=("x_out",))
def scale_head_out(x: torch.Tensor, n: int, x_out: torch.Tensor) -> None:
    """Writes only the first n columns of x_out: the tail stays whatever it was."""
    x_out[..., :n].copy_(x[..., :n] * 2.0)


for _op in (scale_out, fused_add_norm_out, scale_head_, scale_head_out):
    _op.register_fake(lambda *args, **kwargs: None)

cleanpass.register_out_of_place(ops.scale_.default, ops.scale_out.default, {"x": "x_out"},
                                any_input_layout=True)
cleanpass.register_out_of_place(ops.fused_add_norm_.default, ops.fused_add_norm_out.default,
                                {"x": "x_out", "residual": "residual_out"}, any_input_layout=True)
# Whole only when n covers the last dim: the predicate reads the call node.
cleanpass.register_out_of_place(
    ops.scale_head_.default, ops.scale_head_out.default, {"x": "x_out"},
    overwrites={"x": lambda call: call.args[1] >= call.args[0].meta["val"].shape[-1]},
    any_input_layout=True)
# Their only effects are their schema writes: a call that writes only clones nobody reads is
# dead (cleanpass.dead, D3). write_list and scale_head_ do not say so (the counter-cases).
cleanpass.register_effects_known(ops.scale_.default)
cleanpass.register_effects_known(ops.fused_add_norm_.default)
