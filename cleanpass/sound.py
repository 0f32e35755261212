"""The sound policy: remove `c = clone(s)` only when merging c's storage into s's is invisible.

The numbered conditions are those of docs/soundness.md (XLA's copy removal mapped to FX); each
exit below carries its number. Positions are graph order; the graph output is a read at the end.
"A(x)" is x's alias class, restricted to members that may overlap x's bytes.

1. No read of A(s) at or after the first write to A(c) (the writer itself reading s counts),
   unless a `copy_` overwrites all of s after the last write to A(c) and before the read.
2. No write to A(s) after c is taken and up to the last read or write of A(c), except
   `copy_(s, c)`, which becomes a self-copy.
3. If A(c) is written and A(s) holds an input (a placeholder, or a `get_attr` constant, never
   donated), that input is donated, or the program's own `copy_` epilogue overwrites it after
   the last write to A(c).
4. c and s have the same size, stride, storage offset and dtype (known from meta), or they
   differ only because s is a view and every reader of c takes s's layout (`cleanpass.strided`).
5. If A(c) reaches the output: A(s) does not (two outputs would alias) and A(s) holds no input
   the caller kept (an output would alias an input).
"""
from __future__ import annotations

import bisect

import torch
from torch.fx import Node

from . import decisions
from .facts import ClassFacts, GraphFacts
from .layout import layout_verdict
from .strided import strided_verdict

aten = torch.ops.aten


def _is_self_copy(writer: Node, source: Node, clone: Node, facts: GraphFacts) -> bool:
    """`copy_(s, c)`: after the merge it copies a buffer onto itself."""
    if writer.target is not aten.copy_.default or len(writer.args) < 2:
        return False
    dst, src = writer.args[0], writer.args[1]
    return (isinstance(dst, Node) and isinstance(src, Node)
            and facts.resolve(dst) is source and facts.resolve(src) is clone)


def _reads_after(source: Node, source_class: ClassFacts, first_write: int, last_write: int,
                 facts: GraphFacts) -> bool:
    """Condition 1; a read after a `copy_` that overwrites all of s (after the clone's last
    write) sees the copied value, not the old one."""
    # a removed clone's bytes are its root's: ask about the root
    return any(at >= first_write and facts.may_overlap(facts.resolve(member), source)
               and not facts.overwritten_between(source, last_write, at)
               for at, _, member in facts.reads_of(source_class))


def _writes_while_live(source: Node, source_class: ClassFacts, clone: Node, clone_class: ClassFacts,
                       facts: GraphFacts) -> bool:
    start, end = facts.position[clone], clone_class.last_access()
    if not source_class.writes_between(start, end):
        return False
    return any(start < at <= end and facts.may_overlap(facts.resolve(member), source)
               and not _is_self_copy(writer, source, clone, facts)
               for at, writer, member in source_class.writes)


def decide_sound(clone: Node, source: Node, facts: GraphFacts) -> str:
    """The reason to keep `clone`, or decisions.REMOVED."""
    # 4. layout (cheapest, and the removal would change what every user sees)
    verdict = layout_verdict(clone, source)
    if verdict == decisions.LAYOUT_DIFFERS:
        verdict = strided_verdict(clone, source, facts)
    if verdict is not None:
        return verdict
    classes = facts.classes_apart(clone, source)
    if classes is None:
        return decisions.SOURCE_WRITTEN_WHILE_LIVE  # the analysis cannot tell them apart
    clone_class, source_class = classes
    clone_at = facts.position[clone]
    write_positions = clone_class.write_positions  # sorted
    later = bisect.bisect_right(write_positions, clone_at)
    if later < len(write_positions):
        first_write, last_write = write_positions[later], write_positions[-1]
        # 3. the write would land in an input the caller still owns
        for graph_input in source_class.inputs:
            if graph_input in facts.donated or not facts.may_overlap(graph_input, source):
                continue
            if facts.overwritten_at.get(graph_input, -1) <= last_write:
                return decisions.READ_ONLY_INPUT
        # 1. someone still wants the old value of s after the first write
        if (source_class.max_read >= first_write
                and _reads_after(source, source_class, first_write, last_write, facts)):
            return decisions.SOURCE_READ_AFTER_WRITE
    # 2. s changes while c's value is still needed
    if source_class.write_positions and _writes_while_live(source, source_class, clone, clone_class, facts):
        return decisions.SOURCE_WRITTEN_WHILE_LIVE
    # 5. no new output/input or output/output aliasing
    if clone_class.in_output:
        if source_class.in_output:
            return decisions.OUTPUTS_WOULD_ALIAS
        if any(i not in facts.donated for i in source_class.inputs):
            return decisions.OUTPUT_WOULD_ALIAS_INPUT
    return decisions.REMOVED
