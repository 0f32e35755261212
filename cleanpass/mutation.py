"""Mutation analysis: which node reads and which node writes which tensor.

Pure: reads the graph, never edits it. Facts come from op schemas (`Tensor(a!)` arguments,
positional or keyword, single tensors or tensor lists, `out=` arguments). A node the analysis
does not understand (a higher-order op other than the functional ones, a plain Python callable,
`call_method`/`call_module`) is *opaque*: it reads and writes every tensor it receives.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from torch.fx import Node

from ._compat import OpOverload, functional_hops

aten = torch.ops.aten

# Ops that look only at sizes/strides: a use by them is not a read of the data.
METADATA_ONLY_OPS = frozenset(
    op
    for op in (
        getattr(aten.sym_size, "int", None),
        getattr(aten.sym_stride, "int", None),
        getattr(aten.sym_numel, "default", None),
        getattr(aten.sym_storage_offset, "default", None),
    )
    if op is not None
)

# Ops whose written argument is fully overwritten without being read first.
OVERWRITE_ONLY_OPS = frozenset({aten.copy_.default})


FUNCTIONAL_HOPS = functional_hops()


@dataclass(frozen=True)
class Effect:
    """What one node does to the tensors it receives.

    reads: nodes whose data it reads. writes: nodes whose storage it writes. overwrites: the
    subset of `writes` whose old value it never reads (the `copy_` destination, `out=`).
    opaque: the analysis does not know the node; it is assumed to read and write everything.
    """

    reads: tuple[Node, ...] = ()
    writes: tuple[Node, ...] = ()
    overwrites: tuple[Node, ...] = ()
    opaque: bool = False


NO_EFFECT = Effect()


def input_nodes(node: Node) -> Iterable[Node]:
    """The nodes `node` takes as arguments (fx keeps them in a dict; the public property
    rebuilds a list on every call, which dominates the pass on large graphs)."""
    found = getattr(node, "_input_nodes", None)
    return found if isinstance(found, dict) else node.all_input_nodes


def iter_nodes(value: Any) -> Iterator[Node]:
    """Every Node inside an argument (lists, tuples, dicts, nested)."""
    if isinstance(value, Node):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_nodes(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_nodes(item)


def _is_tensor_like(node: Node) -> bool:
    """False only when meta proves the node is not a tensor (a SymInt, an int...)."""
    if "val" not in node.meta:
        return True
    val = node.meta["val"]
    if isinstance(val, torch.Tensor):
        return True
    if isinstance(val, (list, tuple)):
        return any(isinstance(v, torch.Tensor) for v in val)
    return val is None and node.op != "call_function"


def _tensor_nodes(*values: Any) -> tuple[Node, ...]:
    seen: dict[Node, None] = {}
    for value in values:
        for node in iter_nodes(value):
            if _is_tensor_like(node):
                seen[node] = None
    return tuple(seen)


def _is_aten_out_argument(op: OpOverload, argument: Any) -> bool:
    """aten's `out=` convention promises no read of `out`; a custom op's keyword write may read."""
    return op.namespace == "aten" and bool(getattr(argument, "is_out", False))


# How an op treats each argument: "read", "write" (read and write), "overwrite" (write only)
# or "alias" (a view creates an alias; its own users do the reading).
_ROLES_CACHE: dict[OpOverload, tuple[tuple[str, str], ...]] = {}


def _argument_roles(op: OpOverload) -> tuple[tuple[str, str], ...]:
    """(argument name, role) per schema argument, computed once per op."""
    roles = _ROLES_CACHE.get(op)
    if roles is None:
        found = []
        for argument in op._schema.arguments:
            info = argument.alias_info
            if info is not None and info.is_write:
                overwrite = op in OVERWRITE_ONLY_OPS or _is_aten_out_argument(op, argument)
                found.append((argument.name, "overwrite" if overwrite else "write"))
            elif info is not None and op.is_view:
                found.append((argument.name, "alias"))
            else:
                found.append((argument.name, "read"))
        roles = _ROLES_CACHE[op] = tuple(found)
    return roles


def _overload_effect(node: Node, op: OpOverload) -> Effect:
    if op in METADATA_ONLY_OPS:
        return NO_EFFECT
    reads: dict[Node, None] = {}
    writes: dict[Node, None] = {}
    overwrites: dict[Node, None] = {}
    args, kwargs = node.args, node.kwargs
    for index, (name, role) in enumerate(_argument_roles(op)):
        if index < len(args):
            value = args[index]
        elif name in kwargs:
            value = kwargs[name]
        else:
            continue
        if role == "alias":
            continue
        if isinstance(value, Node):  # the common case, without building a generator
            targets = (value,) if _is_tensor_like(value) else ()
        elif isinstance(value, (list, tuple, dict)):
            targets = _tensor_nodes(value)
        else:
            continue
        if not targets:
            continue
        if role != "read":
            writes.update(dict.fromkeys(targets))
        if role == "overwrite":
            overwrites.update(dict.fromkeys(targets))
        else:
            reads.update(dict.fromkeys(targets))
    return Effect(tuple(reads), tuple(writes), tuple(overwrites))


def node_effect(node: Node) -> Effect:
    """The reads and writes of one node (see the module docstring for the rules)."""
    if node.op in ("placeholder", "get_attr"):
        return NO_EFFECT
    if node.op == "output":
        return Effect(reads=_tensor_nodes(node.args))
    if node.op == "call_function":
        target = node.target
        if target is operator.getitem:
            return NO_EFFECT  # selects an element: an alias (or a fresh result) of its parent
        if isinstance(target, OpOverload):
            return _overload_effect(node, target)
        if target in FUNCTIONAL_HOPS:
            return Effect(reads=_tensor_nodes(node.args, node.kwargs))
    tensors = _tensor_nodes(node.args, node.kwargs)
    return Effect(reads=tensors, writes=tensors, opaque=True)
