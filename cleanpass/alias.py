"""Alias analysis: which nodes may share storage.

Pure: reads the graph, never edits it. Two sources of facts, both always applied (a union of
may-alias facts can only make the answer more conservative):

1. fake tensors in `meta["val"]`: nodes whose fake tensors share a storage alias;
2. the graph structure: an op output aliases every argument its schema annotates (`Tensor(a)`,
   `Tensor(a!)`) unless the op returns nothing (a kernel that only mutates its arguments), plus the known unannotated exceptions (`_unsafe_view`); `getitem` aliases its
   parent when the parent may alias anything; an opaque node's output may alias all its tensors.

Structure matters even when meta is present: after an edit (a removed clone) the fake tensors of
later views still point at the old storage, and only the structure says they alias the source.

Inside one storage, `may_overlap` refines with the exact overlap of the fake tensors' bytes
(`cleanpass.overlap`, static layouts: split halves, even and odd columns do not overlap), then,
for symbolic sizes, with proofs of disjointness from strides (`cleanpass.columns`: address
ranges, residues, column blocks such as q/k/v of a fused projection with a dynamic token count);
when neither can tell, it answers True. torch's own helper (`compute_overlapping_tensors`) is
not used: on torch 2.13 it calls `b[1:5]` and `b[:, :8]` disjoint, though they share 32 elements.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Iterable

import torch
from torch.fx import Node

from ._compat import OpOverload, storage_key
from .columns import disjoint_elements
from .mutation import FUNCTIONAL_HOPS, METADATA_ONLY_OPS, PerOp, iter_nodes
from .overlap import view_covers, views_overlap

aten = torch.ops.aten

# Ops that return a view of `self` although their schema carries no alias annotation.
UNANNOTATED_VIEW_OPS = frozenset({aten._unsafe_view.default})


def fake_tensor(node: Node) -> torch.Tensor | None:
    """The node's fake tensor from meta, when it holds exactly one tensor."""
    val = node.meta.get("val")
    return val if isinstance(val, torch.Tensor) else None


def _fake_tensors(node: Node) -> list[torch.Tensor]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [val]
    if isinstance(val, (list, tuple)):
        return [v for v in val if isinstance(v, torch.Tensor)]
    return []


@PerOp
def _aliased_arguments(op: OpOverload) -> tuple[tuple[int, str], ...]:
    """(index, name) of the arguments the op's output may alias, once per op: those whose
    schema carries an alias annotation, `self` of the unannotated views, none when the op
    returns nothing (an in-place kernel: no value to alias) or only looks at metadata."""
    if op in METADATA_ONLY_OPS or not op._schema.returns:
        return ()
    if op in UNANNOTATED_VIEW_OPS:
        return ((0, op._schema.arguments[0].name),)
    return tuple((index, argument.name) for index, argument in enumerate(op._schema.arguments)
                 if argument.alias_info is not None)


_KNOWN_ALIASED = _aliased_arguments.known


def structural_alias_parents(node: Node) -> tuple[Node, ...]:
    """The input nodes the output of `node` may share storage with, from structure alone."""
    if node.op in ("placeholder", "get_attr", "output"):
        return ()
    if node.op == "call_function":
        target = node.target
        if target is operator.getitem:
            parent = node.args[0]
            if isinstance(parent, Node) and structural_alias_parents(parent):
                return (parent,)
            return ()
        if isinstance(target, OpOverload):
            aliased = _KNOWN_ALIASED.get(id(target))
            if aliased is None:
                aliased = _aliased_arguments(target)
            if not aliased:  # the common case: a fresh result, or none
                return ()
            if len(aliased) == 1 and aliased[0][0] < len(node.args):  # a view of one tensor
                value = node.args[aliased[0][0]]
                if isinstance(value, Node):
                    return (value,)
            parents: dict[Node, None] = {}
            for index, name in aliased:
                value = node.args[index] if index < len(node.args) else node.kwargs.get(name)
                parents.update(dict.fromkeys(iter_nodes(value)))
            return tuple(parents)
        if target in FUNCTIONAL_HOPS:
            return ()
    return tuple(dict.fromkeys(iter_nodes((node.args, node.kwargs))))


def _certain_alias(op: OpOverload) -> bool:
    """The op's result always shares its argument's storage: a view other than `reshape` (which
    may copy), or an in-place op (its result is the written argument)."""
    if op is aten.reshape.default:
        return False
    returns = op._schema.returns
    info = returns[0].alias_info if returns else None
    return op.is_view or (info is not None and info.is_write)


is_certain_alias = PerOp(_certain_alias)


Joined = Callable[[Node, Node], None]


class AliasClasses:
    """Union-find of nodes that may share storage (see the module docstring).

    `link` joins two classes; the pass calls it when it removes a clone, so later decisions
    see the clone's storage as the source's. `add` takes the nodes one by one, so that
    `GraphFacts` collects its per-class facts in the same walk.

    `recorded` is False when the values do not record aliasing at all (a real-tensor trace,
    `cleanpass.refake`): some node certainly aliases its one argument, and none of them holds a
    value on that argument's storage. Checked in the same walk, on alias nodes only.
    """

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self._parent: dict[Node, Node] = {}
        self._by_storage: dict[Any, Node] = {}  # fake storage -> the first node holding it
        self._shared = self._apart = 0  # certain aliases whose value is on / off their argument's storage
        for node in nodes:
            self.add(node)

    @property
    def recorded(self) -> bool:
        return bool(self._shared) or not self._apart

    def add(self, node: Node, on_join: Joined | None = None) -> None:
        """Add `node`, the next in graph order, to the classes: it joins every class its value
        may alias. `on_join(old_root, new_root)` is called where two classes that existed
        before `node` become one (a callback, not an attribute: no reference cycle)."""
        self._parent[node] = root = node  # `root` follows the node's class as it joins others
        target = node.target
        if node.op == "call_function" and isinstance(target, OpOverload):
            aliased = _KNOWN_ALIASED.get(id(target))
            if aliased is None:
                aliased = _aliased_arguments(target)
        else:
            aliased = None
        if aliased != ():  # not the common fresh result: an alias of its arguments, or unknown
            parents = structural_alias_parents(node)
            for parent in parents:
                if parent in self._parent:
                    root = self._join(root, parent, node, on_join)
            if len(parents) == 1 and not self._shared and is_certain_alias_node(node):
                verdict = same_storage(node, parents[0])
                if verdict is not None:
                    self._shared += verdict
                    self._apart += not verdict
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):  # the common case, without building a list
            self._join_storage(node, root, val, on_join)
        elif isinstance(val, (list, tuple)):
            for item in val:
                if isinstance(item, torch.Tensor):
                    root = self._join_storage(node, root, item, on_join)

    def _join(self, root: Node, other: Node, node: Node, on_join: Joined | None) -> Node:
        """Join the class whose root is `root` (`node`'s, being walked) to `other`'s; returns
        the new root."""
        other_root = self.find(other)
        if other_root is not root:
            self._parent[root] = other_root
            if root is not node and on_join is not None:  # two older classes meet
                on_join(root, other_root)
        return other_root

    def _join_storage(self, node: Node, root: Node, fake: torch.Tensor, on_join: Joined | None) -> Node:
        """Join `node` (class root `root`) to the first node whose fake tensor has the same
        storage; returns the root."""
        key = storage_key(fake)
        if key is None:
            return root
        first = self._by_storage.setdefault(key, node)
        return root if first is node else self._join(root, first, node, on_join)

    def find(self, node: Node) -> Node:
        parent_of = self._parent
        root = parent_of[node]
        if parent_of[root] is root:  # the common case: a root, or a child of one
            return root
        while parent_of[root] is not root:
            root = parent_of[root]
        while parent_of[node] is not root:  # path compression
            parent_of[node], node = root, parent_of[node]
        return root

    def link(self, root: Node, new_root: Node) -> None:
        """Join two classes, given their roots (different ones); `new_root` stays the root."""
        self._parent[root] = new_root

    def same(self, a: Node, b: Node) -> bool:
        return self.find(a) is self.find(b)


def is_certain_alias_node(node: Node) -> bool:
    target = node.target
    return node.op == "call_function" and isinstance(target, OpOverload) and is_certain_alias(target)


def _storage_keys(val: Any) -> set:
    return {storage_key(v) for v in (val if isinstance(val, (list, tuple)) else (val,))
            if isinstance(v, torch.Tensor)}


def same_storage(node: Node, parent: Node) -> bool | None:
    """Whether the node's value is on its parent's storage; None when either has no tensor."""
    mine, theirs = _storage_keys(node.meta.get("val")), _storage_keys(parent.meta.get("val"))
    return bool(mine & theirs) if mine and theirs else None


Renaming = Callable[[Any], Any]


def _same_key(key: Any) -> Any:
    return key


def _views_of_one_storage(a: Node, b: Node,
                          storage: Renaming) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The fake tensors of two single-tensor nodes when meta says they share one storage (after
    `storage` maps each fake storage to the one it now stands for); None otherwise (no meta,
    several tensors, or storages that cannot be related)."""
    fakes_a, fakes_b = _fake_tensors(a), _fake_tensors(b)
    if len(fakes_a) != 1 or len(fakes_b) != 1:
        return None
    key = storage(storage_key(fakes_a[0]))
    return (fakes_a[0], fakes_b[0]) if key is not None and key == storage(storage_key(fakes_b[0])) else None


def may_overlap(a: Node, b: Node, storage: Renaming = _same_key) -> bool:
    """Whether two nodes of one alias class may share a byte (True unless meta proves not).

    `storage` maps a removed clone's fake storage to its source's (`GraphFacts.storage`): their
    layouts are equal at offset 0, so an index into one is the same index into the other."""
    if a is b:
        return True
    views = _views_of_one_storage(a, b, storage)
    if views is None:
        return True
    exact = views_overlap(*views)
    return not disjoint_elements(*views) if exact is None else exact


def covers(outer: Node, inner: Node, storage: Renaming = _same_key) -> bool:
    """Whether every byte of `inner` is a byte of `outer` (False unless meta proves it)."""
    if outer is inner:
        return True
    views = _views_of_one_storage(outer, inner, storage)
    return views is not None and view_covers(*views)
