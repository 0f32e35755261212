"""The one place that touches private torch / triton APIs, with fallbacks.

Private Inductor APIs move between releases (torch 2.11 on the GPU machines, 2.13 here);
everything else in ``workloads`` goes through these helpers.
"""
from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import types
from typing import Any, Callable

import torch

try:  # torch >= 2.6
    from torch._inductor.custom_graph_pass import CustomGraphPass as _CustomGraphPass
except Exception:  # pragma: no cover - very old torch
    class _CustomGraphPass:  # type: ignore[no-redef]
        """Fallback base: Inductor only needs ``__call__`` and ``uuid``."""

        def __call__(self, graph: torch.fx.Graph) -> None:
            """Subclasses run their pass here."""

        def uuid(self) -> Any:
            return None

CustomGraphPass = _CustomGraphPass

try:
    from torch._dynamo.exc import BackendCompilerFailed
except Exception:  # pragma: no cover - very old torch
    class BackendCompilerFailed(Exception):  # type: ignore[no-redef]
        """Never raised: this torch has no such wrapper."""


def trace_id() -> tuple[str, int] | None:
    """Dynamo's (compile id, attempt) of the trace in progress; None outside a compile. A
    restarted trace keeps its compile id with a higher attempt; ids repeat after a reset."""
    try:
        from torch._guards import CompileContext

        tid = CompileContext.current_trace_id()
    except Exception:  # pragma: no cover - private API moved
        return None
    return None if tid is None else (str(tid.compile_id), int(tid.attempt))


def is_backward_graph(graph: torch.fx.Graph) -> bool:
    """AOTAutograd's backward graph: its inputs include the output gradients (``tangents_*``)."""
    return any(n.op == "placeholder" and n.name.startswith("tangents") for n in graph.nodes)


def backend_cause(failure: BaseException) -> BaseException | None:
    """The exception a backend raised inside Dynamo's ``BackendCompilerFailed`` wrapper."""
    return getattr(failure, "inner_exception", None) or failure.__cause__


OpOverload = torch._ops.OpOverload
OpOverloadPacket = torch._ops.OpOverloadPacket

#: Call targets of scaled-dot-product attention in a Dynamo graph (the public name and the
#: C binding it may be recorded as).
ATTENTION_TARGETS = frozenset({torch.nn.functional.scaled_dot_product_attention,
                               torch._C._nn.scaled_dot_product_attention})


def op_namespace_and_name(target: Any) -> tuple[str, str] | None:
    """``("cleanpass_ir", "rms_norm")`` for any overload or the packet of an op; None otherwise."""
    if isinstance(target, OpOverloadPacket):
        ns, _, name = target._qualified_op_name.partition("::")
        return ns, name
    if isinstance(target, OpOverload):
        return target.namespace, target._opname
    return None


@functools.lru_cache(1)
def triton_available() -> bool:
    """True when triton can be imported (without importing it here)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpret() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def fake_apply(fn: Any, *args: Any) -> Any:
    """Run ``fn`` on fake tensors under their fake mode; None when no fake value is known."""
    mode = None
    for a in args:
        if isinstance(a, torch.Tensor):
            mode = getattr(a, "fake_mode", None)
            if mode is not None:
                break
    if mode is None:
        return None
    with mode:
        return fn(*args)


def mark_dynamic(t: torch.Tensor, dim: int) -> None:
    """``torch._dynamo.maybe_mark_dynamic`` (a hint: code that specialises the dim still compiles,
    just once per size); falls back to ``mark_dynamic``, else a no-op."""
    fn = getattr(torch._dynamo, "maybe_mark_dynamic", None) or getattr(torch._dynamo, "mark_dynamic", None)
    if fn is not None:
        fn(t, dim)


def inductor_options(pre_grad: Any, post_grad: Any) -> dict[str, Any]:
    """Per-compile Inductor options carrying our passes (config patches, not globals)."""
    return {
        "pre_grad_custom_pass": pre_grad,
        "post_grad_custom_post_pass": post_grad,
        "fx_graph_cache": False,
        # Donated inputs are written behind AOTAutograd's back: no cudagraph static copies.
        "triton.cudagraphs": False,
    }


_ENTRY_COUNT = itertools.count()


def fresh_entry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper around ``fn`` with its own code object.

    Dynamo keeps its compiled-code cache (and its recompile limit, 8) on the code object, and
    every workload's modules share ``forward`` code: without a fresh entry each A/B arm would
    add a cache entry to the same code object until the limit fails a ``fullgraph`` compile.
    """
    def entry(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    n = next(_ENTRY_COUNT)
    code = entry.__code__.replace(co_name=f"cleanpass_entry_{n}")
    return types.FunctionType(code, entry.__globals__, code.co_name, None, entry.__closure__)
