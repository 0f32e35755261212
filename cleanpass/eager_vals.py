"""Keep Inductor's stride contract for custom ops true after the pass edits a graph.

A custom op that Inductor (or vLLM's lowering, through `make_fx`) traced carries
`meta["eager_input_vals"]`: the fake values of its arguments when it was traced. After the
post-grad passes, Inductor lowers the op with its inputs forced to exactly those strides
(`constrain_to_fake_tensors`). When the pass changes a call's arguments, that record goes stale:

- folding replaces `kernel_(c, ...)` by `kernel_out(s, ..., fresh)`: a record copied from the
  in-place call has fewer arguments than the new call, and Inductor fails while lowering it
  (`LoweringException: AssertionError`);
- removing a clone of a strided view hands the kernel the view, while the record still holds
  the clone's dense strides: Inductor copies the view into a dense buffer and back around the
  kernel, so the removal saves nothing (and the copy is a new clone in all but name).

So every call whose arguments the pass changed, every call whose arguments it gave new values
(`cleanpass.strided` re-propagates the readers of a view it exposes), and every call it created
from a call that had a record, gets a record made of its arguments' current values. Records of
calls the pass did not touch stay as Inductor wrote them. Where an argument has no value the
record is dropped instead (Inductor then constrains nothing, which is what it does for any node
a custom pass creates): a record that does not describe the arguments is never left behind.
"""
from __future__ import annotations

from typing import Any

from torch.fx import Graph, Node
from torch.fx.node import map_aggregate

KEY = "eager_input_vals"


Snapshot = dict[Node, tuple[Any, Any, tuple[int, ...]]]


def _value_ids(node: Node) -> tuple[int, ...]:
    return tuple(id(arg.meta.get("val")) for arg in node.all_input_nodes)


def snapshot(graph: Graph) -> Snapshot:
    """Per call with a record: its arguments and the identity of their values, before the edits."""
    return {node: (node.args, node.kwargs, _value_ids(node)) for node in graph.nodes if KEY in node.meta}


def _value_of(argument: Any) -> Any:
    if isinstance(argument, Node):
        if "val" not in argument.meta:
            raise LookupError(argument.name)
        return argument.meta["val"]
    return argument


def refresh(graph: Graph, before: Snapshot) -> int:
    """Rewrite the records that no longer describe their call's arguments; returns how many."""
    changed = 0
    for node in graph.nodes:
        if KEY not in node.meta:
            continue
        if node in before and before[node] == (node.args, node.kwargs, _value_ids(node)):
            continue
        try:
            node.meta[KEY] = map_aggregate((node.args, node.kwargs), _value_of)
        except LookupError:
            del node.meta[KEY]
        changed += 1
    return changed
