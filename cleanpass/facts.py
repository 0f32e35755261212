"""Facts about one graph that the policies decide on, kept current as clones are dropped.

Built once from `mutation` and `alias`: node positions, per alias class the reads, writes and
`copy_` destinations with their positions, the inputs and output membership, and which inputs
the program's own `copy_` epilogue overwrites. `drop_clone` merges a removed clone's class into its
source's, so every later decision sees the graph as it will be after the edits.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.fx import Graph, Node

from ._compat import storage_key
from .alias import AliasClasses, covers, may_overlap
from .layout import layout_verdict
from .overlap import fills_its_storage
from .mutation import Effect, node_effect

aten = torch.ops.aten


@dataclass(slots=True)
class ClassFacts:
    """Aggregates of one alias class; the lists hold (position, acting node, member touched)."""

    members: list[Node] = field(default_factory=list)
    reads: list[tuple[int, Node, Node]] = field(default_factory=list)
    writes: list[tuple[int, Node, Node]] = field(default_factory=list)
    write_positions: list[int] = field(default_factory=list)  # sorted
    max_read: int = -1
    # rare: tuples, shared and empty in most classes (one ClassFacts is built per class, per graph)
    copies_into: tuple[tuple[int, Node], ...] = ()  # (position, `copy_` destination)
    inputs: tuple[Node, ...] = ()  # placeholders and get_attr constants
    in_output: bool = False

    def absorb(self, other: "ClassFacts") -> None:
        self.members += other.members
        self.reads += other.reads
        self.writes += other.writes
        mine, theirs = self.write_positions, other.write_positions
        if theirs:
            if not mine or theirs[0] > mine[-1]:  # the common case: the later class's writes
                mine += theirs
            else:
                for position in theirs:
                    bisect.insort(mine, position)
        self.max_read = max(self.max_read, other.max_read)
        self.copies_into += other.copies_into
        self.inputs += other.inputs
        self.in_output = self.in_output or other.in_output

    def last_access(self) -> int:
        """The last position that reads or writes the class (the output reads at the end);
        a use that only takes a view or looks at sizes is neither: the view's own readers are
        the class's readers."""
        return max(self.max_read, self.write_positions[-1] if self.write_positions else -1)

    def writes_between(self, low: int, high: int) -> bool:
        """Any write at a position p with low < p <= high."""
        index = bisect.bisect_right(self.write_positions, low)
        return index < len(self.write_positions) and self.write_positions[index] <= high


class GraphFacts:
    """Positions, effects, alias classes and per-class aggregates of one graph."""

    def __init__(self, graph: Graph, donated: tuple[int, ...] = ()) -> None:
        self.nodes = list(graph.nodes)
        self.position = {node: index for index, node in enumerate(self.nodes)}
        self.effects: dict[Node, Effect] = {}  # filled by `_collect`
        self.aliases = AliasClasses(self.nodes)
        placeholders = graph.find_nodes(op="placeholder")
        self.donated = frozenset(placeholders[i] for i in donated if 0 <= i < len(placeholders))
        self.overwritten_at: dict[Node, int] = {}  # input -> last `copy_` that overwrites all of it
        self.replaced: dict[Node, Node] = {}
        self._renamed_storage: dict[Any, Any] = {}  # a removed clone's fake storage -> its source's
        self._to_rename: list[tuple[Node, Node]] = []  # removals whose storages are not renamed yet
        self._classes: dict[Node, ClassFacts] = {}
        self._collect()

    def _collect(self) -> None:
        """Each node's effect and the per-class aggregates it feeds, in one walk over the nodes."""
        # Classes do not change while collecting: look each node's class up once. Positions
        # rise as the loop goes, so appending keeps every `write_positions` sorted.
        classes, effects = self._classes, self.effects
        lookup: dict[Node, ClassFacts] = {}
        for node, root in zip(self.nodes, self.aliases.roots(self.nodes)):
            facts = classes.get(root)
            if facts is None:
                facts = classes[root] = ClassFacts()
            lookup[node] = facts
            facts.members.append(node)
            kind = node.op
            if kind == "placeholder" or kind == "get_attr":  # constants are never donated
                facts.inputs += (node,)
        copy_ = aten.copy_.default
        for position, node in enumerate(self.nodes):
            effects[node] = effect = node_effect(node)
            reads = effect.reads
            if reads:
                output = node.op == "output"
                for member in reads:
                    facts = lookup[member]
                    facts.reads.append((position, node, member))
                    facts.max_read = position
                    if output:
                        facts.in_output = True
            if not effect.writes:
                continue
            for member in effect.writes:
                facts = lookup[member]
                facts.writes.append((position, node, member))
                facts.write_positions.append(position)
            if node.target is copy_:  # writes every byte of its destination
                destination = node.args[0]
                if isinstance(destination, Node):
                    lookup[destination].copies_into += ((position, destination),)
                    if destination.op == "placeholder":  # the program's own epilogue
                        self.overwritten_at[destination] = position

    def class_of(self, node: Node) -> ClassFacts:
        """The aggregates of `node`'s alias class (created empty on first sight)."""
        return self._class_at(self.aliases.find(node))

    def _class_at(self, root: Node) -> ClassFacts:
        facts = self._classes.get(root)
        if facts is None:
            facts = self._classes[root] = ClassFacts()
        return facts

    def classes_apart(self, a: Node, b: Node) -> tuple[ClassFacts, ClassFacts] | None:
        """The aggregates of a's and b's classes; None when they are one class."""
        root_a, root_b = self.aliases.find(a), self.aliases.find(b)
        if root_a is root_b:
            return None
        return self._class_at(root_a), self._class_at(root_b)

    def overwritten_between(self, source: Node, low: int, high: int) -> bool:
        """Whether a `copy_` writes every byte of `source` at a position p, low < p < high:
        a read after it sees the copied value, whatever was written to `source` before."""
        return any(low < at < high and covers(destination, source, self.storage)
                   for at, destination in self.class_of(source).copies_into)

    def storage(self, key: Any) -> Any:
        """The fake storage that `key` stands for once the decided removals are applied."""
        if self._to_rename:
            self._rename_removed()
        while key in self._renamed_storage:
            key = self._renamed_storage[key]
        return key

    def _rename_removed(self) -> None:
        """A removed clone's fake storage stands for its source's when both have one layout
        (condition 4; a strided removal does not, and its readers' meta is re-propagated
        instead): when the clone fills its storage every view of it is the same view of the
        source. Done when first asked (most graphs never ask), in removal order."""
        pending, self._to_rename = self._to_rename, []
        for clone, source in pending:
            clone_key, source_key = storage_key(clone.meta.get("val")), storage_key(source.meta.get("val"))
            if (clone_key is not None and source_key is not None and clone_key != source_key
                    and fills_its_storage(clone.meta["val"]) and layout_verdict(clone, source) is None):
                self._renamed_storage[clone_key] = self.storage(source_key)

    def may_overlap(self, a: Node, b: Node) -> bool:
        """`alias.may_overlap`, seeing a removed clone's views as views of its source."""
        return may_overlap(a, b, self.storage)

    def resolve(self, node: Node) -> Node:
        """The node that will stand for `node` once all decided removals are applied."""
        while node in self.replaced:
            node = self.replaced[node]
        return node

    def drop_clone(self, clone: Node, source: Node) -> None:
        """Record that `clone` is replaced by `source`: their storages become one class."""
        self.replaced[clone] = source
        self._to_rename.append((clone, source))
        clone_root, source_root = self.aliases.find(clone), self.aliases.find(source)
        if clone_root is source_root:
            return
        clone_facts, source_facts = self._classes.pop(clone_root, None), self._class_at(source_root)
        self.aliases.link(clone_root, source_root)
        if clone_facts is None:
            return
        if len(clone_facts.members) > len(source_facts.members):  # absorb the smaller one
            clone_facts.absorb(source_facts)
            self._classes[source_root] = clone_facts
        else:
            source_facts.absorb(clone_facts)
