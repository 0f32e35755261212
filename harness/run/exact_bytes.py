"""``bytes_exact``: our own byte count of a compiled graph, exact for views.

Inductor's ``num_bytes_accessed`` (column ``bytes_accessed``) charges an extern or fallback
kernel for the whole buffer behind every argument it touches: a kernel that writes q, a view
into a fused qkv projection, is billed for all of qkv (the mutation names the base buffer).
So removing the clone in front of such a kernel moves no bytes in Inductor's count, and the
pass's decisions (``Decision.bytes``) can never be reconciled with it.

Where we count: on Inductor's own scheduler nodes, the kernels the generated code launches
(read while Inductor counts its bytes, ``harness.run.compat.count_inductor_bytes``). Each node
costs what Inductor charges it, except a fallback kernel (an op Inductor calls as it is), which
costs ``call_bytes`` of the views it is actually handed (numel x element size of each
argument, never its base): a call of one of our IR kernels (in place, out of place or
functional; any provider) its IR op's byte model (``workloads.ir.registry.kernel_call_bytes``),
any other op (e.g. attention) a read of each argument and a write of what it mutates or
returns. We count there, and not on the FX graph the pass leaves, because only the scheduler
knows what Inductor fused: a clone fused into its producer costs its write only, one left on
its own costs read + write of its bytes (Inductor's count for a generated kernel is exact for
its elements), and a view Inductor could not pass as a reinterpretation of its base shows up
as the copy kernel it became.

One inexactness is Inductor's and stays: a generated kernel's read is charged per element its
index touches, capped at the size of the buffer it reads. A broadcast read (an ``expand``)
indexed through a floor division touches each element several times, so it is charged once
per element read unless its buffer is smaller. ``llama_block`` shows it: the grouped-query
expand of k reads k's clone (a small buffer: charged its 1 KiB per token in fp32 at the smoke
shape) before the pass and the qkv projection after it (charged 4 KiB per token, as v's expand
is in both), so its ``bytes_exact`` falls 3 KiB per token less than the decisions say.

Sizes are evaluated at the compile's size hints: with a dynamic token dim, the count describes
the token count the graph was compiled at (the row's ``bytes_at_tokens``), like
``bytes_accessed`` and the pass's ``Decision.bytes``.

Variants that run eagerly (``eager``, ``ideal``) have no scheduler: ``EagerBytes`` counts their
first call op by op with the same ``call_bytes``; views and allocations move nothing.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from harness.run.compat import SchedulerKernel, TorchDispatchMode, tree_leaves
from workloads.ir.registry import is_ir_kernel, kernel_call_bytes, tensor_bytes

log = logging.getLogger(__name__)

#: ops that allocate without writing (their buffers are written by whoever fills them)
_ALLOCATIONS = frozenset({"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::new_empty",
                          "aten::new_empty_strided"})


def kernel_bytes(kernel: SchedulerKernel) -> int | None:
    """One scheduler node's bytes: a fallback kernel by ``call_bytes`` on the views it is handed
    (our kernels by their byte model), every other node by Inductor's count; None for one of
    our kernels whose arguments could not be read."""
    if kernel.target is None or getattr(kernel.target, "_schema", None) is None:  # e.g. a higher-order op
        return kernel.inductor_bytes
    if kernel.args is None:
        return None if is_ir_kernel(kernel.target) else kernel.inductor_bytes
    return call_bytes(kernel.target, kernel.args, kernel.kwargs or {}, kernel.outputs)


def exact_bytes(graphs: Sequence[Sequence[SchedulerKernel] | None]) -> int | None:
    """Bytes of every kernel of the compiled graphs; None when a graph's nodes are unknown."""
    if not graphs or any(g is None for g in graphs):
        return None
    try:
        counts = [kernel_bytes(k) for g in graphs for k in g]  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - a kernel we cannot size costs the count, never the run
        log.warning("cannot size a kernel of the compiled graph: no exact bytes", exc_info=True)
        return None
    return None if any(c is None for c in counts) else sum(counts)  # type: ignore[misc]


def decided_bytes(reports: Sequence[object]) -> int | None:
    """Read + write bytes of the clones the pass removed or folded, from its decisions
    (``2 x Decision.bytes``: a removed clone saves its copy, a folded one too, its kernel now
    reading the source and writing a fresh buffer). None without cleanpass reports or with a
    decision of unknown size."""
    if not reports or not all(hasattr(r, "folded") for r in reports):
        return None
    decisions = [d for r in reports for d in (*r.removed, *r.folded)]
    if any(d.bytes is None for d in decisions):
        return None
    return 2 * sum(int(d.bytes) for d in decisions)


class EagerBytes(TorchDispatchMode):
    """Counts the bytes of every op run inside it (``total``, by ``eager_op_bytes``); an op it
    cannot size makes ``total`` None, never the call fail."""

    def __init__(self) -> None:
        super().__init__()
        self._sum: int | None = 0

    @property
    def total(self) -> int | None:
        return self._sum

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._sum is not None:
            try:
                self._sum += eager_op_bytes(func, args, kwargs, out)
            except Exception:  # noqa: BLE001 - an argument kind we cannot size
                log.debug("cannot count the bytes of %s", func, exc_info=True)
                self._sum = None
        return out


def call_bytes(func: Any, args: Sequence[Any], kwargs: dict[str, Any], fresh: Sequence[torch.Tensor]) -> int:
    """Bytes of one call of an op Inductor or eager code runs as it is: our kernels by their byte
    model; any other op reads each tensor argument once (an ``out=`` argument, and ``copy_``'s
    destination, are only written), writes each argument it mutates and the ``fresh`` tensors
    it returns. Sizes are those of the views passed."""
    modelled = kernel_call_bytes(func, args, kwargs)
    if modelled is not None:
        return modelled
    read, written = _reads_and_writes(func._schema, args, kwargs)
    return read + written + sum(tensor_bytes(t) for t in fresh)


def eager_op_bytes(func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> int:
    """Bytes one eager op call moves (``call_bytes``; the fresh outputs are those that share no
    input's storage). Views (nothing fresh, nothing mutated) and allocations move nothing."""
    schema = getattr(func, "_schema", None)
    if schema is None or schema.name in _ALLOCATIONS:
        return 0
    inputs = {_storage(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
    fresh = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and _storage(t) not in inputs]
    if not fresh and not is_ir_kernel(func) and not _reads_and_writes(schema, args, kwargs)[1]:
        return 0  # a view or a metadata query
    return call_bytes(func, args, kwargs, fresh)


def _reads_and_writes(schema: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[int, int]:
    read = written = 0
    for position, argument in enumerate(schema.arguments):
        value = args[position] if position < len(args) else kwargs.get(argument.name)
        size = sum(tensor_bytes(t) for t in tree_leaves(value) if isinstance(t, torch.Tensor))
        writes = argument.alias_info is not None and argument.alias_info.is_write
        written += size if writes else 0
        only_written = writes and (argument.is_out or schema.name == "aten::copy_" and position == 0)
        read += 0 if only_written else size
    return read, written


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()
