"""Folding: a clone that must stay but only hands an in-place kernel a private buffer goes into
the kernel's out-of-place form.

    c = clone(s); kernel_(.., c, ..)   ->   e = empty_strided(<c's layout>); kernel_out(.., s, .., e)

and every later use of c reads e. Runs after elimination, on the clones it kept, for kernels
registered in `cleanpass.forms`. Folding `c = clone(s)` into the call `k` is sound when:

F1. k's kernel has a registered out-of-place form that writes every element of the argument
    c is passed as (a partial write would leave part of the fresh buffer unset).
F2. k is the first node to touch c's storage: nothing reads or writes any alias of c before k,
    and k receives c exactly once, through that argument, and no other alias of c.
F3. s keeps the value c copied until k has read it: no write to an alias of s that may overlap
    s after the clone and before k, and k itself writes nothing that may overlap s.
F4. The fresh buffer has exactly c's layout (size, stride, dtype, device from meta, storage
    offset 0, strides provably those of a dense layout, so they can be rebuilt from sizes),
    and the form accepts s's layout (it reads strides at run time, or s has c's).
F5. c and s are tensors the analysis knows (a plain `clone(s)` with meta on both, s not in
    c's alias class).

A call may fold some of its arguments and not others: the unfolded ones are passed as their
own outputs (updated in place, as before).
"""
from __future__ import annotations

import logging
import operator

import torch
from torch.fx import Graph, Node

from . import decisions
from ._compat import statically_equal
from .alias import fake_tensor, may_overlap, structural_alias_parents
from .facts import GraphFacts
from .forms import OutOfPlaceForm, out_of_place_form
from .layout import layout_verdict

log = logging.getLogger(__name__)
aten = torch.ops.aten
_EMPTY = aten.empty_strided.default


def _arguments(call: Node) -> list[tuple[str, object]]:
    """(name, value) per schema argument of an OpOverload call, defaults filled in."""
    found = []
    for index, argument in enumerate(call.target._schema.arguments):
        if index < len(call.args):
            found.append((argument.name, call.args[index]))
        elif argument.name in call.kwargs:
            found.append((argument.name, call.kwargs[argument.name]))
        else:
            found.append((argument.name, argument.default_value))
    return found


def _is_clone(value: object) -> bool:
    return (isinstance(value, Node) and value.op == "call_function"
            and value.target is aten.clone.default and bool(value.args)
            and isinstance(value.args[0], Node) and set(value.kwargs) <= {"memory_format"})


def _clone_aliases(clone: Node) -> set[Node]:
    """c and every node that may share its storage: the views (and opaque results) built on it.

    c is fresh, so only nodes derived from it can alias it; a kernel call that returns nothing
    aliases nothing (the alias classes merge it with its arguments, too coarse here).
    """
    found, stack = {clone}, [clone]
    while stack:
        node = stack.pop()
        for user in node.users:
            if user in found or ("val" in user.meta and user.meta["val"] is None):
                continue
            if node in structural_alias_parents(user):
                found.add(user)
                stack.append(user)
    return found


def _first_touch_is(call: Node, clone: Node, argument: str, facts: GraphFacts) -> bool:
    """F2: nothing reads or writes an alias of c before `call`; `call` receives c once, as
    `argument`, and no other alias of c."""
    at = facts.position[call]
    aliases = _clone_aliases(clone)
    for member in aliases:
        for user in member.users:
            if user is call:
                continue
            effect = facts.effect(user)
            if facts.position[user] < at and any(facts.resolve(touched) is member
                                                 for touched in effect.reads + effect.writes):
                return False
    passed = [name for name, value in _arguments(call) if any(v in aliases for v in _nodes(value))]
    return passed == [argument] and sum(v is clone for v in _nodes(dict(_arguments(call))[argument])) == 1


def _nodes(value: object) -> list[Node]:
    if isinstance(value, Node):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _nodes(item)]
    return []


def _source_unchanged(clone: Node, source: Node, call: Node, facts: GraphFacts) -> bool:
    """F3: no write that may overlap s in (clone, call], the call's write to c aside."""
    low, high = facts.position[clone], facts.position[call]
    source_class = facts.class_of(source)
    if not source_class.writes_between(low, high):
        return True
    # a removed clone had its root's layout: its bytes are the root's
    return not any(low < position <= high and may_overlap(facts.resolve(member), source)
                   and not (node is call and member is clone)
                   for position, node, member in source_class.writes)


def _layout_ok(clone: Node, source: Node, form: OutOfPlaceForm) -> bool:
    """F4/F5: c's layout is known and the form can read s as it is."""
    fake_clone, fake_source = fake_tensor(clone), fake_tensor(source)
    if fake_clone is None or fake_source is None or fake_clone.dtype != fake_source.dtype:
        return False
    if fake_clone.storage_offset() != 0 or dense_order(fake_clone) is None:
        return False
    return form.any_input_layout or layout_verdict(clone, source) is None


def foldable(call: Node, argument: str, clone: Node, form: OutOfPlaceForm, facts: GraphFacts) -> bool:
    """Conditions F1-F5 for folding `clone` (passed to `call` as `argument`)."""
    source = clone.args[0]
    if not form.overwrites_all(call, argument):  # F1
        return False
    if facts.aliases.same(clone, source) or not _layout_ok(clone, source, form):  # F5, F4
        return False
    if not _first_touch_is(call, clone, argument, facts):  # F2
        return False
    return _source_unchanged(clone, source, call, facts)  # F3


def dense_order(fake: torch.Tensor) -> list[int] | None:
    """The dims of a dense (clone-made) layout from outermost to innermost, when provable:
    stride[order[i]] is the product of the sizes of the dims after it. None otherwise."""
    dims = list(range(fake.dim()))
    candidates = [dims]
    strides = fake.stride()
    if all(type(st) is int for st in strides):
        candidates.append(sorted(dims, key=lambda d: -strides[d]))
    shape = fake.shape
    for order in candidates:
        expected: object = 1
        ok = True
        for index, d in enumerate(reversed(order)):
            # a dim of one element has no stride to keep; a symbolic dim that may be one is
            # held to its stride (asking whether it is one would guard the graph on the answer)
            if not statically_equal(shape[d], 1) and not statically_equal(strides[d], expected):
                ok = False
                break
            # the next dim's stride; a SymInt product costs about 1 ms (a new symbolic node),
            # so none is built after the outermost dim, and 1 * size is size itself
            if index + 1 < len(order):
                expected = shape[d] if type(expected) is int and expected == 1 else expected * shape[d]
        if ok:
            return order
    return None


def _sym_node(graph: Graph, target: object, args: tuple, val: object) -> Node:
    node = graph.call_function(target, args)
    node.meta["val"] = val
    return node


def _fresh_buffer(graph: Graph, clone: Node, order: list[int]) -> Node:
    """`empty_strided` with c's size and strides; symbolic ones computed from s's sizes."""
    fake, source = fake_tensor(clone), clone.args[0]
    with graph.inserting_before(clone):
        sizes = [dim if type(dim) is int else _sym_node(graph, aten.sym_size.int, (source, d), dim)
                 for d, dim in enumerate(fake.shape)]
        strides: list[object] = [1] * fake.dim()
        running, running_val = 1, 1
        for d in reversed(order):
            strides[d] = running
            running_val = running_val * fake.shape[d]
            if type(running_val) is int:
                running = running_val
            else:
                running = _sym_node(graph, operator.mul, (running, sizes[d]), running_val)
        fresh = graph.call_function(_EMPTY, (sizes, strides), {"dtype": fake.dtype, "device": fake.device})
    fresh.meta["val"] = fake
    return fresh


def _rewrite(graph: Graph, call: Node, form: OutOfPlaceForm, folds: dict[str, Node]) -> None:
    """Replace `call` by its out-of-place form, each folded clone by a fresh buffer."""
    arguments = _arguments(call)
    inputs = [folds[name].args[0] if name in folds else value for name, value in arguments]
    outputs = []
    for name, _ in form.outputs:
        value = dict(arguments)[name]
        if name in folds:
            fresh = _fresh_buffer(graph, folds[name], dense_order(fake_tensor(folds[name])))
            folds[name].replace_all_uses_with(fresh)
            value = fresh
        outputs.append(value)
    with graph.inserting_before(call):
        folded = graph.call_function(form.out_of_place, tuple(inputs) + tuple(outputs))
    folded.meta.update(call.meta)
    graph.erase_node(call)
    for clone in folds.values():
        graph.erase_node(clone)


def _candidates(clones: list[Node], facts: GraphFacts) -> list[tuple[Node, OutOfPlaceForm]]:
    """The calls with a registered form that take a kept clone as a mutated argument, in graph
    order (found from the clones' users: no scan of the whole graph)."""
    found: dict[Node, OutOfPlaceForm] = {}
    for clone in clones:
        if not _is_clone(clone):
            continue
        for node in clone.users:
            if node in found or node.op != "call_function":
                continue
            form = out_of_place_form(node.target)
            if form is not None and any(_is_clone(value) for name, value in _arguments(node)
                                        if form.output_for(name) is not None):
                found[node] = form
    return sorted(found.items(), key=lambda item: facts.position[item[0]])


def fold_clones(graph: Graph, facts: GraphFacts, clones: list[Node], report: decisions.CloneReport) -> None:
    """Fold every kept clone that F1-F5 allow; moves its decision to `report.folded`.

    `facts` are elimination's, current with its removals (positions are those of the graph
    before the removals, an order the edits keep; effects name removed clones, so every
    node they name is resolved first); `clones` are the clones it kept.
    """
    candidates = _candidates(clones, facts)
    if not candidates:
        return
    plan: list[tuple[Node, OutOfPlaceForm, dict[str, Node]]] = []
    for call, form in candidates:
        folds = {}
        for name, value in _arguments(call):
            if form.output_for(name) is None or not _is_clone(value):
                continue
            try:
                ok = foldable(call, name, value, form, facts)
            except Exception:  # never guess: an unreadable case stays a clone
                log.warning("cleanpass: could not decide folding %s; keeping it", value.name, exc_info=True)
                ok = False
            if ok:
                folds[name] = value
        if folds:
            plan.append((call, form, folds))
    for call, form, folds in plan:  # decided on the unedited graph, applied after
        for clone in folds.values():
            report.fold(clone.name)
        _rewrite(graph, call, form, folds)
