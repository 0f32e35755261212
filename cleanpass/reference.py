"""The "vllm" policy: the reference pass as KNOWLEDGE.md §1 describes it, holes included.

Kept only so both policies can be run side by side on the same graphs; never use it to ship.
It edits as it goes, like the reference: a removed clone's users become its source's users
before the next clone is looked at. Its known holes: views and bases are never looked at, a
clone nobody writes is always removed, `return x.clone()` becomes `return x`, and several
writes to one clone raise `AssertionError` (writes through keyword arguments or tensor lists
are not seen). It does keep clones whose strides or storage offset differ (later versions).
"""
from __future__ import annotations

import torch
from torch.fx import Graph, Node

from . import decisions
from .layout import clone_bytes

aten = torch.ops.aten


def _positional_write_users(clone: Node) -> list[Node]:
    writers = []
    for user in clone.users:
        if not isinstance(user.target, torch._ops.OpOverload):
            continue
        arguments = user.target._schema.arguments
        for index, value in enumerate(user.args):
            info = arguments[index].alias_info if index < len(arguments) else None
            if value is clone and info is not None and info.is_write:
                writers.append(user)
    return writers


def _strides_differ(clone: Node, source: Node) -> bool:
    a, b = clone.meta.get("val"), source.meta.get("val")
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return False
    return a.stride() != b.stride() or a.storage_offset() != b.storage_offset()


def run_reference(graph: Graph, donated: tuple[int, ...], report: decisions.CloneReport) -> None:
    """Apply the reference rule to every `aten.clone.default` in graph order, editing in place."""
    position = {node: index for index, node in enumerate(graph.nodes)}
    placeholders = [node for node in graph.nodes if node.op == "placeholder"]
    clones = [node for node in graph.nodes if node.target is aten.clone.default]
    for clone in clones:
        source = clone.args[0]
        name = clone.name
        size = clone_bytes(clone)
        writers = _positional_write_users(clone)
        assert len(writers) <= 1, f"clone {name} has {len(writers)} writes"
        if _strides_differ(clone, source):
            report.add(decisions.Decision(name, source.name, decisions.VLLM_LAYOUT_DIFFERS, size))
            continue
        if writers:
            write_at = position[writers[0]]
            if any(position[user] > write_at for user in source.users):
                reason = decisions.VLLM_SOURCE_USED_AFTER_WRITE
                report.add(decisions.Decision(name, source.name, reason, size))
                continue
            if source.op == "placeholder" and placeholders.index(source) not in donated:
                report.add(decisions.Decision(name, source.name, decisions.VLLM_NON_DONATED_INPUT, size))
                continue
        clone.replace_all_uses_with(source)
        graph.erase_node(clone)
        report.add(decisions.Decision(name, source.name, decisions.REMOVED, size))
