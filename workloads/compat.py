"""The one place that touches private torch / triton APIs, with fallbacks.

Private Inductor APIs move between releases (torch 2.11 on the GPU machines, 2.13 here);
everything else in ``workloads`` goes through these helpers.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import os
import types
from typing import Any, Callable, Iterable

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


def hash_files(paths: Iterable[str], extra: str = "") -> str:
    """Hash the contents of source files (plus ``extra``) for a pass ``uuid()``."""
    h = hashlib.sha256(extra.encode())
    for p in sorted(set(paths)):
        with open(p, "rb") as f:
            h.update(p.encode())
            h.update(f.read())
    return h.hexdigest()


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
    """``torch._dynamo.mark_dynamic`` behind one name."""
    torch._dynamo.mark_dynamic(t, dim)


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
