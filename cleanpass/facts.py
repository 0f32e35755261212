"""Facts about one graph that the policies decide on, kept current as clones are dropped.

Built in one walk over the nodes from `mutation` and `alias` (the classes grow as the walk
goes, and the facts of two classes merge where a node joins them): node positions, per alias
class the writes and `copy_` destinations with their positions, the last read, the inputs and
output membership, and which inputs the program's own `copy_` epilogue overwrites. The reads
themselves are listed only when a decision asks (most graphs never do). `drop_clone` merges a
removed clone's class into its source's, so every later decision sees the graph as it will be
after the edits.
"""
from __future__ import annotations

import bisect
from typing import Any

import torch
from torch.fx import Graph, Node

from ._compat import OpOverload, storage_key
from .alias import AliasClasses, covers, may_overlap
from .layout import layout_verdict
from .overlap import fills_its_storage
from .mutation import NO_EFFECT, Effect, argument_roles, node_effect, tensor_inputs

aten = torch.ops.aten


class ClassFacts:
    """Aggregates of one alias class. `writes` holds (position, writing node, member written);
    `reads` the same for reads, filled only when a decision asks (`GraphFacts.reads_of`): most
    graphs never do, and a read is the commonest event. The lists are shared empty tuples until
    the first event: one ClassFacts is built per class that is read or written, per graph."""

    __slots__ = ("reads", "writes", "write_positions", "max_read", "copies_into", "inputs", "in_output")

    def __init__(self) -> None:
        self.reads: list[tuple[int, Node, Node]] | tuple = ()
        self.writes: list[tuple[int, Node, Node]] | tuple = ()
        self.write_positions: list[int] | tuple = ()  # sorted
        self.max_read = -1
        self.copies_into: tuple[tuple[int, Node], ...] = ()  # (position, `copy_` destination)
        self.inputs: tuple[Node, ...] = ()  # placeholders and get_attr constants
        self.in_output = False

    def absorb(self, other: "ClassFacts") -> None:
        """Take in the facts of `other`, a class that ceases to exist (its lists become ours).
        In place: a class that absorbs one class after another must not copy itself each time."""
        if other.reads:
            if self.reads:
                self.reads.extend(other.reads)
            else:
                self.reads = other.reads
        if other.writes:
            mine, theirs = self.write_positions, other.write_positions
            if not mine:
                self.writes, self.write_positions = other.writes, theirs
            else:
                self.writes.extend(other.writes)
                if theirs[0] > mine[-1]:  # the common case: the later class's writes
                    mine.extend(theirs)
                else:
                    for position in theirs:
                        bisect.insort(mine, position)
        if other.max_read > self.max_read:
            self.max_read = other.max_read
        if other.copies_into:
            self.copies_into += other.copies_into
        if other.inputs:
            self.inputs += other.inputs
        if other.in_output:
            self.in_output = True

    def add_write(self, position: int, node: Node, member: Node) -> None:
        """Positions arrive in graph order while collecting: appending keeps them sorted."""
        if self.writes:
            self.writes.append((position, node, member))
            self.write_positions.append(position)
        else:
            self.writes, self.write_positions = [(position, node, member)], [position]

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
        self.position: dict[Node, int] = {}  # filled by `_collect`
        self._effects: dict[Node, Effect] = {}  # those `_collect` built; the rest on demand
        self._read_lists: dict[Node, list[Node]] = {}  # what each node that only reads reads
        self._classes: dict[Node, ClassFacts] = {}
        self.aliases = AliasClasses()
        placeholders = graph.find_nodes(op="placeholder")
        self.donated = frozenset(placeholders[i] for i in donated if 0 <= i < len(placeholders))
        self.overwritten_at: dict[Node, int] = {}  # input -> last `copy_` that overwrites all of it
        self.replaced: dict[Node, Node] = {}
        self._renamed_storage: dict[Any, Any] = {}  # a removed clone's fake storage -> its source's
        self._to_rename: list[tuple[Node, Node]] = []  # removals whose storages are not renamed yet
        self._reads_indexed = False
        self._collect()

    def _collect(self) -> None:
        """Alias classes, each node's effect and the per-class aggregates it feeds, in one walk:
        a node's class is settled before the walk reaches its readers. Positions rise as the
        walk goes, so appending keeps every `write_positions` sorted."""
        classes, effects, read_lists = self._classes, self._effects, self._read_lists
        parent_of, find, add = self.aliases._parent, self.aliases.find, self.aliases.add
        merge, copy_ = self._merge_classes, aten.copy_.default
        known_roles, position_of = argument_roles.known, self.position
        for position, node in enumerate(self.nodes):
            position_of[node] = position
            add(node, merge)  # the node's class is settled before the walk reaches its readers
            kind = node.op
            if kind == "call_function":
                target = node.target
                roles = known_roles.get(id(target)) if isinstance(target, OpOverload) else None
                if roles is not None and roles[0]:  # reads only (`node_effect`'s common case), inline
                    read_lists[node] = members = tensor_inputs(node)
                    for member in members:  # `_class_at(find(member))`, inline: once per read
                        root = parent_of[member]
                        if parent_of[root] is not root:
                            root = find(member)
                        facts = classes.get(root)
                        if facts is None:
                            facts = classes[root] = ClassFacts()
                        facts.max_read = position
                    continue
            elif kind == "placeholder" or kind == "get_attr":  # constants are never donated
                self._class_at(find(node)).inputs += (node,)
                continue
            effects[node] = effect = node_effect(node)
            output = kind == "output"
            for member in effect.reads:
                facts = self._class_at(find(member))
                facts.max_read = position
                if output:
                    facts.in_output = True
            if not effect.writes:
                continue
            for member in effect.writes:
                self._class_at(find(member)).add_write(position, node, member)
            if node.target is copy_:  # writes every byte of its destination
                destination = node.args[0]
                if isinstance(destination, Node):
                    self._class_at(find(destination)).copies_into += ((position, destination),)
                    if destination.op == "placeholder":  # the program's own epilogue
                        self.overwritten_at[destination] = position

    def effect(self, node: Node) -> Effect:
        """`node`'s reads and writes (`cleanpass.mutation`) as collected, before any edit."""
        found = self._effects.get(node)
        if found is None:
            reads = self._read_lists.get(node)
            if reads is None:
                found = node_effect(node)
            else:
                found = Effect(tuple(reads)) if reads else NO_EFFECT
            self._effects[node] = found
        return found

    def reads_of(self, facts: ClassFacts) -> list[tuple[int, Node, Node]] | tuple:
        """(position, reading node, member read) for every read of the class of `facts`. The
        first call lists the reads of every class, from what `_collect` kept, in one walk."""
        if not self._reads_indexed:
            self._reads_indexed = True
            find, read_lists, effects = self.aliases.find, self._read_lists, self._effects
            for position, node in enumerate(self.nodes):
                reads = read_lists.get(node)
                if reads is None:
                    effect = effects.get(node)  # placeholders and get_attr: none, and no reads
                    reads = effect.reads if effect is not None else ()
                for member in reads:
                    owner = self._class_at(find(member))
                    if owner.reads:
                        owner.reads.append((position, node, member))
                    else:
                        owner.reads = [(position, node, member)]
        return facts.reads

    def _merge_classes(self, old_root: Node, new_root: Node) -> None:
        """Two classes became one (`new_root` its root): so do their aggregates."""
        old = self._classes.pop(old_root, None)
        if old is None:
            return
        new = self._classes.get(new_root)
        if new is None:
            self._classes[new_root] = old
        elif len(old.reads) + len(old.writes) > len(new.reads) + len(new.writes):  # absorb the smaller
            old.absorb(new)
            self._classes[new_root] = old
        else:
            new.absorb(old)

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
        if clone_root is not source_root:
            self.aliases.link(clone_root, source_root)
            self._merge_classes(clone_root, source_root)
