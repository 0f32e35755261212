"""Mutation analysis: which node reads and which node writes which tensor.

Pure: reads the graph, never edits it. Facts come from op schemas (`Tensor(a!)` arguments,
positional or keyword, single tensors or tensor lists, `out=` arguments). A node the analysis
does not understand (a higher-order op other than the functional ones, a plain Python callable,
`call_method`/`call_module`) is *opaque*: it reads and writes every tensor it receives.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Generic, Iterable, Iterator, NamedTuple, TypeVar

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

T = TypeVar("T")


class PerOp(Generic[T]):
    """A per-op cache keyed by the op's identity: `OpOverload.__hash__` runs in Python, a cost
    paid per node that shows on large graphs. The cache keeps every op it has seen alive, so
    an id it holds can never be reused by another object."""

    def __init__(self, compute: Callable[[OpOverload], T]) -> None:
        self._compute = compute
        #: id(op) -> value, for the hottest call sites: `known.get(id(op))` skips a method call
        #: (None: not computed yet, call the cache)
        self.known: dict[int, T] = {}
        self._seen: list[OpOverload] = []

    def __call__(self, op: OpOverload) -> T:
        try:
            return self.known[id(op)]
        except KeyError:  # first sight of this op
            self._seen.append(op)
            value = self.known[id(op)] = self._compute(op)
            return value


class Effect(NamedTuple):
    """What one node does to the tensors it receives.

    reads: nodes whose data it reads. writes: nodes whose storage it writes. overwrites: the
    subset of `writes` whose old value it never reads (the `copy_` destination, `out=`).
    opaque: the analysis does not know the node; it is assumed to read and write everything.
    A named tuple: one is built per node, and a tuple builds faster than a frozen dataclass.
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


_MISSING = object()


def _is_tensor_like(node: Node) -> bool:
    """False only when meta proves the node is not a tensor (a SymInt, an int...)."""
    val = node.meta.get("val", _MISSING)
    if val is _MISSING or isinstance(val, torch.Tensor):
        return True
    if isinstance(val, (list, tuple)):
        return any(isinstance(v, torch.Tensor) for v in val)
    return val is None and node.op != "call_function"


def tensor_inputs(node: Node) -> list[Node]:
    """The node's arguments that may be tensors (the reads of an op that only reads); the
    common case is tested inline: this runs once per node of every graph."""
    arguments = getattr(node, "_input_nodes", None)  # `input_nodes`, inline
    found = []
    for argument in (arguments if isinstance(arguments, dict) else node.all_input_nodes):
        val = argument.meta.get("val", _MISSING)
        if val is _MISSING or isinstance(val, torch.Tensor) or _is_tensor_like(argument):
            found.append(argument)
    return found


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


# Schema types that cannot hold a tensor (sizes, flags, numbers; dtype, layout and memory format
# are ints in schemas): a node passed there is a SymInt or a number, never data to read.
_SCALAR_TYPE_KINDS = frozenset({"IntType", "SymIntType", "FloatType", "SymFloatType", "BoolType",
                                "SymBoolType", "NumberType", "ComplexType", "StringType", "DeviceObjType"})


def _may_hold_tensor(jit_type: Any) -> bool:
    """False only for a schema type that provably holds no tensor (`int`, `List[int]`...)."""
    kind = jit_type.kind()
    if kind in ("OptionalType", "ListType"):
        return _may_hold_tensor(jit_type.getElementType())
    return kind not in _SCALAR_TYPE_KINDS


# How an op treats each argument: "read", "write" (read and write), "overwrite" (write only)
# or "alias" (a view creates an alias; its own users do the reading).
@PerOp
def argument_roles(op: OpOverload) -> tuple[bool, tuple[tuple[int, str, str], ...]]:
    """(whether the op only reads every argument, (index, argument name, role) per schema
    argument that is not an alias and may hold a tensor); no roles for ops that only look at
    metadata."""
    if op in METADATA_ONLY_OPS:
        return False, ()
    found = []
    makes_alias = False
    for index, argument in enumerate(op._schema.arguments):
        info = argument.alias_info
        if info is not None and info.is_write:
            overwrite = op in OVERWRITE_ONLY_OPS or _is_aten_out_argument(op, argument)
            found.append((index, argument.name, "overwrite" if overwrite else "write"))
        elif info is not None and op.is_view:
            makes_alias = True  # "alias": a view creates an alias; its own users do the reading
        elif _may_hold_tensor(argument.type):
            found.append((index, argument.name, "read"))
    reads_only = not makes_alias and all(role == "read" for _, _, role in found)
    return reads_only, tuple(found)


_new_tuple = tuple.__new__  # builds an Effect without the named tuple's Python-level __new__


def _unique(nodes: list[Node]) -> tuple[Node, ...]:
    count = len(nodes)
    if count < 2 or (count == 2 and nodes[0] is not nodes[1]):  # the common cases, no dict
        return tuple(nodes)
    return tuple(dict.fromkeys(nodes))


def _effect_by_roles(node: Node, roles: tuple[tuple[int, str, str], ...]) -> Effect:
    """The effect of an op that may write, or only looks at metadata (no roles)."""
    if not roles:
        return NO_EFFECT
    reads: list[Node] = []
    writes: list[Node] = []
    overwrites: list[Node] = []
    args, kwargs = node.args, node.kwargs
    positional = len(args)
    for index, name, role in roles:
        if index < positional:
            value = args[index]
        elif name in kwargs:
            value = kwargs[name]
        else:
            continue
        if isinstance(value, Node):  # the common case: one tensor, no tuple, no generator
            val = value.meta.get("val", _MISSING)  # `_is_tensor_like`'s common case, inline
            if not (val is _MISSING or isinstance(val, torch.Tensor) or _is_tensor_like(value)):
                continue
            if role == "read":
                reads.append(value)
            else:
                writes.append(value)
                (overwrites if role == "overwrite" else reads).append(value)
            continue
        if not isinstance(value, (list, tuple, dict)):
            continue
        targets = _tensor_nodes(value)
        if role == "read":
            reads += targets
        else:
            writes += targets
            (overwrites if role == "overwrite" else reads).extend(targets)
    if not writes:
        return _new_tuple(Effect, (_unique(reads), (), (), False)) if reads else NO_EFFECT
    return _new_tuple(Effect, (_unique(reads), _unique(writes), _unique(overwrites), False))


_KNOWN_ROLES = argument_roles.known


def node_effect(node: Node) -> Effect:
    """The reads and writes of one node (see the module docstring for the rules)."""
    kind = node.op
    if kind == "call_function":
        target = node.target
        if isinstance(target, OpOverload):
            reads_only, roles = _KNOWN_ROLES.get(id(target)) or argument_roles(target)
            if reads_only:  # the common case: every tensor argument is read, none written
                found = tensor_inputs(node)
                return _new_tuple(Effect, (tuple(found), (), (), False)) if found else NO_EFFECT
            return _effect_by_roles(node, roles)
        if target is operator.getitem:
            return NO_EFFECT  # selects an element: an alias (or a fresh result) of its parent
        if target in FUNCTIONAL_HOPS:
            return Effect(reads=_tensor_nodes(node.args, node.kwargs))
    elif kind in ("placeholder", "get_attr"):
        return NO_EFFECT
    elif kind == "output":
        return Effect(reads=_tensor_nodes(node.args))
    tensors = _tensor_nodes(node.args, node.kwargs)
    return Effect(reads=tensors, writes=tensors, opaque=True)
