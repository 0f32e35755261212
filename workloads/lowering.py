"""Post-grad lowering: replace each IR op node with its chosen provider implementation.

Runs inside ``post_grad_custom_post_pass``, never the pre pass: ``remove_noop_ops`` (between
the two) treats ``aten.clone`` as a no-op and would delete the protective clones.

For ``y = ir_op(a, b, ...)`` with an in-place kernel writing arguments W:
    c_i = aten.clone.default(a_i)      for each i in W
    kernel(..., c_i, ...)              # mutates the clones, returns None
    y  -> the clone(s) named by ``Impl.outputs``
A functional kernel just takes the node's place. The native fallback leaves the node as is.
Every new node gets ``meta["val"]`` (fake tensors), so later passes can reason about storage.
"""
from __future__ import annotations

import logging
import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import fx

from cleanpass.decisions import ORIGIN_KEY
from workloads import compat
from workloads.ir import NATIVE, Impl, ir_op_of

log = logging.getLogger(__name__)

CLONE = torch.ops.aten.clone.default
# The clones this lowering creates carry meta[ORIGIN_KEY] = LOWERING, so cleanpass's reports can
# tell them from the model's own.
LOWERING = "lowering"


@dataclass
class LoweringReport:
    """What one lowering run did: provider per node, clones emitted, clones in the graph after."""

    chosen: dict[str, str] = field(default_factory=dict)   # node name -> provider
    clones_emitted: int = 0
    clones_after: int = 0
    unlowered: list[str] = field(default_factory=list)


def _val(a: Any) -> Any:
    """The fake value of an argument (nodes -> meta['val'], constants unchanged)."""
    if isinstance(a, fx.Node):
        return a.meta.get("val")
    if isinstance(a, (list, tuple)):
        return type(a)(_val(x) for x in a)
    return a


def _choose(node: fx.Node, providers: Sequence[str] | None) -> Impl | None:
    op = ir_op_of(node.target)
    vals = _val(list(node.args))
    if any(isinstance(a, fx.Node) and a.meta.get("val") is None for a in node.args):
        log.debug("%s: no meta['val'] on an argument; provider checks see None", node.name)
    return op.choose(vals, providers) if op is not None else None


def _flat_args(node: fx.Node) -> list[Any]:
    """The node's arguments in schema order (kwargs folded in)."""
    schema = node.target._schema
    args = list(node.args)
    for a in schema.arguments[len(args):]:
        args.append(node.kwargs.get(a.name, a.default_value))
    return args


def _lower_inplace(graph: fx.Graph, node: fx.Node, impl: Impl) -> int:
    args = _flat_args(node)
    with graph.inserting_before(node):
        clones: dict[int, fx.Node] = {}
        for pos in impl.writes:
            c = graph.call_function(CLONE, (args[pos],))
            c.meta["val"] = compat.fake_apply(torch.clone, _val(args[pos]))
            c.meta[ORIGIN_KEY] = LOWERING
            clones[pos] = c
            args[pos] = c
        call = graph.call_function(impl.kernel, tuple(args))
        call.meta["val"] = None
    if node.meta.get("stack_trace"):  # where the user's code asked for the op (cleanpass.explain)
        for made in (*clones.values(), call):
            made.meta["stack_trace"] = node.meta["stack_trace"]
    outs = [clones[p] for p in impl.outputs]
    if len(outs) == 1 and not isinstance(node.meta.get("val"), (tuple, list)):
        node.replace_all_uses_with(outs[0])
    else:
        for user in list(node.users):
            if user.op == "call_function" and user.target is operator.getitem:
                user.replace_all_uses_with(outs[user.args[1]])
                graph.erase_node(user)
    graph.erase_node(node)
    return len(clones)


def _users_are_getitems(node: fx.Node) -> bool:
    if not isinstance(node.meta.get("val"), (tuple, list)):
        return True
    return all(u.op == "call_function" and u.target is operator.getitem for u in node.users)


def lower_ir_ops(graph: fx.Graph, providers: Sequence[str] | None = None) -> LoweringReport:
    """Lower every ``cleanpass_ir`` node in ``graph`` (edited in place); warn on leftovers."""
    report = LoweringReport()
    for node in list(graph.nodes):
        if node.op != "call_function" or ir_op_of(node.target) is None:
            continue
        if isinstance(node.target, compat.OpOverloadPacket):
            node.target = node.target.default
        impl = _choose(node, providers)
        if impl is not None and impl.inplace and not _users_are_getitems(node):
            log.warning("%s: a user takes the whole output tuple; keeping the native op", node.name)
            impl = None
        if impl is None:
            report.chosen[node.name] = NATIVE
            continue
        report.chosen[node.name] = impl.provider
        if impl.inplace:
            report.clones_emitted += _lower_inplace(graph, node, impl)
        else:
            node.target = impl.kernel
    report.unlowered = [n.name for n in graph.nodes if n.op == "call_function" and ir_op_of(n.target) is not None]
    if report.unlowered:
        log.warning("IR ops left unlowered (they run their native definition): %s", report.unlowered)
    report.clones_after = count_clones(graph)
    graph.lint()
    log.debug("lowered %s", dict(Counter(report.chosen.values())))
    return report


def count_clones(graph: fx.Graph) -> int:
    """Number of ``aten.clone.default`` nodes in ``graph``."""
    return sum(1 for n in graph.nodes if n.op == "call_function" and n.target is CLONE)
