"""The "vllm" policy: vLLM 0.33.0's `UnsafeCloneEliminationPass`, holes included.

Kept only so both policies can be run side by side on the same graphs; never use it to ship.
Written from the pass's observed behaviour and its unit tests (checked against the real pass
by `make peer`). Per `aten.clone.default` node `c = clone(s)`, in graph order, editing as it
goes (a removed clone's users become its source's users before the next clone is looked at):

1. keep c when its stride or storage offset differs from s's (unknown meta counts as equal);
2. find the users that write c (`writes_clone`); more than one raises `AssertionError`;
3. written: keep c when any user of s comes after the write, or when s is a placeholder the
   caller did not donate;
4. not written: keep c when removing it would make an output share storage with a graph input
   or another output (storages from `meta["val"]`; unknown storage counts as shared);
5. otherwise replace every use of c by s and erase c.

Its known holes: views and bases of s are never looked at when c is written; a clone nobody
writes is removed even when s (or an alias) is written later, e.g. by the `copy_` epilogue;
writes through keyword arguments or tensor lists are not seen; several writers, or a user that
is neither an op overload nor a higher-order op, raise `AssertionError`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.fx import Graph, Node

from . import decisions
from ._compat import (AUTO_FUNCTIONALIZED_V1, HigherOrderOperator, OpOverload, is_functional_triton_wrapper,
                      storage_key)

aten = torch.ops.aten


def writes_clone(user: Node, clone: Node) -> bool:
    """vLLM 0.33's write test: does `user` (maybe) write `clone`?

    The output and `auto_functionalized` (v1: it hands the tensor back for later use) never do;
    any other higher-order op does, unless it is the functional Triton wrapper; an op overload
    does when `clone` is a positional argument whose schema entry is a write.
    """
    if user.op == "output":
        return False
    target = user.target
    if AUTO_FUNCTIONALIZED_V1 is not None and target is AUTO_FUNCTIONALIZED_V1:
        return False
    if user.op == "call_function" and isinstance(target, HigherOrderOperator):
        return not is_functional_triton_wrapper(target)
    assert isinstance(target, OpOverload), f"unsupported user {user} of {clone}"
    arguments = target._schema.arguments
    return any(value is clone and index < len(arguments) and arguments[index].is_write
               for index, value in enumerate(user.args))


def _strides_differ(clone: Node, source: Node) -> bool:
    a, b = clone.meta.get("val"), source.meta.get("val")
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return False
    try:
        return a.stride() != b.stride() or a.storage_offset() != b.storage_offset()
    except RuntimeError:  # layouts without strides (sparse): vLLM counts them as equal
        return False


def _storage(node: Any) -> Any | None:
    return storage_key(node.meta.get("val")) if isinstance(node, Node) else None


def _alias_verdict(clone: Node, source: Node, graph: Graph) -> str | None:
    """Rule 4: the keep reason when removing an unwritten clone would alias graph I/O."""
    clone_storage, source_storage = _storage(clone), _storage(source)
    if clone_storage is None or source_storage is None:
        return decisions.VLLM_STORAGE_UNKNOWN
    outputs = {_storage(node) for node in graph.output_node().all_input_nodes}
    if clone_storage not in outputs:
        return None
    inputs = {_storage(node) for node in graph.find_nodes(op="placeholder")}
    return decisions.VLLM_WOULD_ALIAS_GRAPH_IO if source_storage in inputs | outputs else None


def _keep_reason(clone: Node, source: Node, graph: Graph, position: dict[Node, int],
                 donated_nodes: frozenset[Node]) -> str | None:
    """Rules 1-4 for one clone (see the module docstring); None means remove it."""
    if _strides_differ(clone, source):
        return decisions.VLLM_LAYOUT_DIFFERS
    writers = [user for user in clone.users if writes_clone(user, clone)]
    assert len(writers) <= 1, f"clone {clone.name} has {len(writers)} writes"
    if not writers:
        return _alias_verdict(clone, source, graph)
    write_at = position[writers[0]]
    if any(position[user] > write_at for user in source.users):
        return decisions.VLLM_SOURCE_USED_AFTER_WRITE
    if source.op == "placeholder" and source not in donated_nodes:
        return decisions.VLLM_NON_DONATED_INPUT
    return None


def run_reference(graph: Graph, donated: tuple[int, ...], report: decisions.CloneReport) -> None:
    """Apply the reference rule to every `aten.clone.default` in graph order, editing in place."""
    position = {node: index for index, node in enumerate(graph.nodes)}
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    donated_nodes = frozenset(placeholders[i] for i in donated if 0 <= i < len(placeholders))
    clones = [node for node in graph.nodes
              if node.op == "call_function" and node.target is aten.clone.default]
    for clone in clones:
        source = clone.args[0]
        assert isinstance(source, Node), f"clone {clone.name} of a non-node {source!r}"
        reason = _keep_reason(clone, source, graph, position, donated_nodes)
        if reason is not None:
            report.add(decisions.decide(clone, source.name, reason))
            continue
        report.add(decisions.decide(clone, source.name, decisions.REMOVED))
        clone.replace_all_uses_with(source)
        graph.erase_node(clone)
