"""Fake values that record aliasing, for graphs whose trace did not record it.

make_fx on real tensors (`tracing_mode="real"`, how many unit tests build graphs) stores in
`meta["val"]` a fresh fake tensor per node: a view gets its own storage at offset 0, so the
values say neither that two slices share a buffer (the pass would keep clones it removes on the
same program traced on fake tensors) nor where a view starts (condition 4 would compare
offsets that are not the real ones). The pass must decide a program the same way however it
was traced, and must not trust storage identity or offsets that the trace did not record.

`aliasing_recorded` (the pass reads the same verdict from its alias classes,
`AliasClasses.recorded`) tells such a graph apart: no node that certainly aliases its one
tensor argument (a view op's result, an in-place op's) holds a value on that argument's
storage. One such node alone is not the sign: a pass that rewires a view (a lowering putting a
clone in front of it) may leave its old value behind, and `reshape` may copy. `refresh` then
re-derives every value by running the graph's ops on fresh fake tensors (inputs: same size,
stride and dtype, one storage each, as the trace gave them) and writes them to `meta["val"]`.
It only runs on graphs with static sizes (a real trace has no symbols); where it cannot, the
caller keeps every clone.
"""
from __future__ import annotations

import logging
import operator
from typing import Any

import torch
from torch.fx import Graph, Node
from torch.fx.node import map_arg

from .alias import AliasClasses

log = logging.getLogger(__name__)


def aliasing_recorded(graph: Graph) -> bool:
    """False when the graph has nodes that certainly alias their one tensor argument and none
    of them holds a value on that argument's storage (a real-tensor trace); True otherwise,
    also where meta is missing (the pass's other rules handle that). The pass reads the same
    verdict from its alias classes (`AliasClasses.recorded`), built in one walk with them."""
    return AliasClasses(graph.nodes).recorded


class _CannotRefresh(Exception):
    pass


def _static(val: Any) -> bool:
    return isinstance(val, torch.Tensor) and all(
        type(v) is int for v in (*val.shape, *val.stride(), val.storage_offset()))


def _fresh_values(graph: Graph) -> dict[Node, Any]:
    """Every node's value, computed on fresh fake tensors (see the module docstring)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    values: dict[Node, Any] = {}
    owner = graph.owning_module

    def value_of(node: Node) -> Any:
        if node not in values:
            raise _CannotRefresh(f"{node.name} has no value")
        return values[node]

    for node in graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                if not _static(val):
                    raise _CannotRefresh(f"{node.name} has symbolic sizes")
                with mode:
                    values[node] = torch.empty_strided(val.shape, val.stride(), dtype=val.dtype,
                                                       device=val.device)
            elif isinstance(val, (int, float, bool)) or val is None:
                values[node] = val
            else:
                raise _CannotRefresh(f"placeholder {node.name} holds {type(val).__name__}")
        elif node.op == "get_attr":
            attr: Any = owner
            for part in str(node.target).split("."):
                attr = getattr(attr, part, None)
            if not isinstance(attr, torch.Tensor):
                raise _CannotRefresh(f"constant {node.target} not found")
            values[node] = mode.from_tensor(attr, static_shapes=True)
        elif node.op == "call_function":
            args, kwargs = map_arg(node.args, value_of), map_arg(node.kwargs, value_of)
            if node.target is operator.getitem:
                values[node] = args[0][args[1]]
                continue
            with mode:
                values[node] = node.target(*args, **kwargs)
        elif node.op != "output":  # call_module, call_method: not run here
            raise _CannotRefresh(f"{node.op} {node.name}")
    return values


def refresh(graph: Graph) -> bool:
    """Re-derive `meta["val"]` of every node from fresh fake tensors; False (meta untouched)
    when some node cannot be run on them."""
    try:
        values = _fresh_values(graph)
    except Exception:  # noqa: BLE001 - an op without a fake kernel, a symbolic size...
        log.info("cleanpass: cannot re-derive aliasing on fake tensors; keeping clones", exc_info=True)
        return False
    for node, value in values.items():
        if node.op != "placeholder" or isinstance(value, torch.Tensor):
            node.meta["val"] = value
    return True
