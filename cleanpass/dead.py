"""Step 0: dead code whose only effect on the pass is to keep clones alive.

A clone nobody uses, and an aten computation without side effects whose result nobody uses,
can always go: nothing observes them. Erasing them first matters because their reads of a
clone's source would otherwise count as "the old value is still needed" (condition 1) or keep
the clone's value alive (condition 2). Later removals never take reads away (users of a removed
clone read its source instead), so this is done once, before deciding.

Only aten ops are erased, and only those the schema says write nothing and torch does not mark
impure, random or data-dependent: a custom kernel whose result is unused may still communicate
or log, and a data-dependent op may define sizes other nodes' meta refers to.

One kind of custom kernel call is dead too (D3 in docs/soundness.md): a kernel that declared
its schema writes are its only effects (`cleanpass.register_effects_known`) whose every written
argument is a clone used by nothing else. A clone is a private buffer, so nobody can observe
what the kernel writes there; the call goes, then the clone. A kernel that did not declare it
(it may communicate or log), or a call that also writes anything other than such a clone (a view
of the clone, a graph input, a clone someone reads later), stays.
"""
from __future__ import annotations

import logging
import operator
from typing import Callable

import torch
from torch.fx import Graph, Node

from ._compat import OpOverload, is_impure
from .forms import effects_known
from .mutation import PerOp, input_nodes, node_effect

log = logging.getLogger(__name__)
aten = torch.ops.aten

_KEEP_TAGS = tuple(getattr(torch.Tag, name) for name in
                   ("nondeterministic_seeded", "dynamic_output_shape", "data_dependent_output")
                   if hasattr(torch.Tag, name))


@PerOp
def _is_pure_aten(op: OpOverload) -> bool:
    """aten, writes none of its arguments, no random or data-dependent result."""
    return (op.namespace == "aten" and not op._schema.is_mutable
            and not any(tag in op.tags for tag in _KEEP_TAGS))


def is_clone(node: Node) -> bool:
    return node.op == "call_function" and node.target is aten.clone.default


def _erasable(node: Node) -> bool:
    """`node` has no users; may it go?"""
    if node.op != "call_function":
        return False
    if is_clone(node) or node.target is operator.getitem:  # selecting an element does nothing
        return True
    if not isinstance(node.target, OpOverload):
        return False
    if effects_known(node.target):
        return _writes_only_private_clones(node)
    return _is_pure_aten(node.target) and not is_impure(node)


def _writes_only_private_clones(call: Node) -> bool:
    """D3: every buffer the kernel writes is a clone that only this call uses."""
    for argument in input_nodes(call):  # cheap first: most calls take no such clone at all
        if len(argument.users) == 1 and is_clone(argument):
            break
    else:
        return False
    effect = node_effect(call)
    return (not effect.opaque and bool(effect.writes)
            and all(is_clone(written) and len(written.users) == 1 for written in effect.writes))


def erase_dead_code(graph: Graph, on_clone: Callable[[Node], None]) -> list[Node]:
    """Erase dead clones and dead pure aten nodes (see the module docstring); calls `on_clone`
    on each dead clone before erasing it. Walking backwards lets a node whose last user was
    dead go in the same pass. Returns the clones left, in graph order."""
    left, others = [], 0
    clone = aten.clone.default
    for node in reversed(graph.nodes):
        if node.users:  # the common case: used, so not dead (`is_clone` inline: every node)
            if node.target is clone and node.op == "call_function":
                left.append(node)
        elif _erasable(node):
            if is_clone(node):
                on_clone(node)
            else:
                others += 1
            graph.erase_node(node)
    if others:
        log.debug("cleanpass: erased %d dead pure nodes", others)
    left.reverse()
    return left
