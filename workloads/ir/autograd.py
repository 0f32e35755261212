"""Autograd for the functional IR overloads: the backward differentiates the op's native
definition (``torch.func.vjp``), so no op needs a hand-written derivative and the gradient is
by construction the one of the math the forward computes.

Only the functional overload is differentiable. ``maybe_inplace`` gives its activations up,
which autograd may still need; the donation pass refuses it under grad mode at trace time.
"""
from __future__ import annotations

from typing import Any, Callable

import torch


def _differentiable(a: Any) -> bool:
    return isinstance(a, torch.Tensor) and (a.is_floating_point() or a.is_complex())


def _setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
    ctx.slots = [i for i, a in enumerate(inputs) if _differentiable(a)]
    ctx.constants = [None if i in ctx.slots else a for i, a in enumerate(inputs)]
    ctx.save_for_backward(*(inputs[i] for i in ctx.slots))


def _make_backward(native: Callable[..., Any]) -> Callable[..., tuple]:
    def backward(ctx: Any, *grads: Any) -> tuple:
        saved = ctx.saved_tensors

        def forward(*tensors: torch.Tensor) -> Any:
            args = list(ctx.constants)
            for i, t in zip(ctx.slots, tensors):
                args[i] = t
            return native(*args)

        outputs, vjp = torch.func.vjp(forward, *saved)
        multi = isinstance(outputs, tuple)
        outs = outputs if multi else (outputs,)
        cot = tuple(torch.zeros_like(o) if g is None else g for o, g in zip(outs, grads))
        per_slot = vjp(cot if multi else cot[0])
        result: list[Any] = [None] * len(ctx.constants)
        for i, g in zip(ctx.slots, per_slot):
            result[i] = g
        return tuple(result)

    return backward


def register(qualname: str, native: Callable[..., Any], lib: torch.library.Library) -> None:
    """Make the functional overload ``qualname`` differentiable through ``native``."""
    torch.library.register_autograd(qualname, _make_backward(native), setup_context=_setup_context, lib=lib)
