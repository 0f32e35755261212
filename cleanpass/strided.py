"""Condition 4 for strided views: a clone whose layout differs from its source's only because the
source is a view may still go, when every reader of the clone works on the source's layout.

    q = split(qkv)[0]          # strides (qkv_size, 1)        q = split(qkv)[0]
    c = clone(q)               # strides (q_size, 1)    ->    rotary_(q, ..)   # writes qkv in place
    rotary_(c, ..)                                            v = view(q, ..)  # a view on q's strides
    v = view(c, ..)

Removing `c = clone(s)` hands every user of c the tensor s, with s's strides and storage
offset instead of c's dense ones. That is invisible when (checked here, on fake tensors; the
other conditions of `cleanpass.sound` still apply unchanged):

S1. c is a plain `clone(s)` (no memory_format: `.contiguous()` and `clone(memory_format=...)`
    ask for a layout) of the same size and dtype, and s provably has no two elements at one
    address (an expanded source would let one write land on several elements).
S2. Every reader of c, followed transitively through the views it makes, takes the new layout:
    a. a view op (`view`, `reshape`, `split`, `slice`, `permute`, ...) that is still a view of
       the new value (re-run on fake tensors: `view` of dims the strides cannot merge raises,
       `reshape` would copy; either keeps the clone, `strided-view-invalid`);
    b. a kernel registered with `cleanpass.register_any_layout` for that argument (it reads
       strides and offset at run time and returns nothing);
    c. a functional aten op that reads any layout and computes the same bits from it: an exact
       copy (`clone`, `_to_copy`, `cat`, `index_select`) on any layout; a kernel that takes
       row strides (matmul, attention) when the unit-stride dim and the stride order stay; a
       TensorIterator op (pointwise, reductions) when its whole traversal stays (stride order,
       unit-stride dim, which dims coalesce), since that decides the order of a reduction's
       sum and which elements take a vector loop's scalar tail. It is re-run on fake tensors:
       when its outputs keep their old layout nothing further changes, else its readers are
       checked in turn;
    d. `sym_size` / `sym_numel` (sizes are unchanged).
    Anything else keeps the clone (`strided-user-needs-layout`): an op that may need the dense
    layout, an unknown op, `sym_stride`, a writer that did not declare it takes any layout.
S3. No value whose layout changes reaches the graph output: the caller would see other strides
    (`strided-output`).
S4. Re-running the readers on fake tensors works (`strided-unverified` otherwise).

After the removal the new fake values are written to `meta["val"]` of every reader whose value
changed (`relayout`): Inductor's layout constraints read them (a stale stride makes it insert a
copy), and later decisions in the same run see the real layout and storage.
"""
from __future__ import annotations

import heapq
import logging
import operator
from typing import Any

import torch
from torch.fx import Node

from . import decisions
from ._compat import (OpOverload, ShapeGuardNeeded, fake_mode_of, rerun_on_fakes, statically_equal, statically_equal_scaled,
                      statically_true, storage_key)
from .alias import fake_tensor
from .facts import GraphFacts
from .forms import accepts_layout, declares_any_layout
from .mutation import PerOp

log = logging.getLogger(__name__)
aten = torch.ops.aten

# the new fake values of a removable clone's readers, kept on the clone until it is removed
RELAYOUT_KEY = "cleanpass_relayout"

# S2a: views whose validity and result depend on the input's strides; each must stay a view
VIEW_OPS = frozenset(getattr(packet, name) for packet, name in (
    (aten.view, "default"), (aten.reshape, "default"), (aten._unsafe_view, "default"),
    (aten.slice, "Tensor"), (aten.select, "int"), (aten.narrow, "default"),
    (aten.split, "Tensor"), (aten.split_with_sizes, "default"), (aten.unbind, "int"),
    (aten.permute, "default"), (aten.transpose, "int"), (aten.t, "default"),
    (aten.unsqueeze, "default"), (aten.squeeze, "dim"), (aten.squeeze, "dims"), (aten.squeeze, "default"),
    (aten.expand, "default"), (aten.alias, "default")) if hasattr(packet, name))
_makes_view = PerOp(lambda target: target in VIEW_OPS or target is operator.getitem)

# S2c: functional ops whose results do not depend on the input layout at all (exact copies)
COPY_READERS = frozenset(getattr(packet, name) for packet, name in (
    (aten.clone, "default"), (aten._to_copy, "default"), (aten.cat, "default"),
    (aten.index_select, "default")) if hasattr(packet, name))

# S2c: kernels that take explicit row strides (BLAS, flash attention): the same unit-stride dim
# and stride order keep their arithmetic, only the addresses change
STRIDED_KERNEL_READERS = frozenset(getattr(packet, name) for packet, name in (
    (aten.mm, "default"), (aten.bmm, "default"), (aten.addmm, "default"),
    (aten._scaled_dot_product_flash_attention_for_cpu, "default"),
    (aten._scaled_dot_product_flash_attention, "default"),
    (aten._scaled_dot_product_efficient_attention, "default"),
    (aten._scaled_dot_product_cudnn_attention, "default")) if hasattr(packet, name))

# S2c: TensorIterator ops (and those tagged pointwise): they coalesce dims that are contiguous
# with each other and vectorize the innermost run, so the order of arithmetic (a reduction's
# sum, a vector loop's scalar tail) changes unless the whole traversal does not
ITERATOR_READERS = frozenset(getattr(packet, name) for packet, name in (
    (aten.sum, "dim_IntList"), (aten.mean, "dim"), (aten.amax, "default"),
    (aten._softmax, "default")) if hasattr(packet, name))

# S2e: pointwise ops whose every element is one correctly rounded IEEE operation (or a compare,
# select or copy) of the inputs' elements at its index: a vector loop and a scalar tail give the
# same bits, so neither strides nor traversal order can change a result; its layout follows the
# inputs (re-run on fake tensors). add/sub only with alpha 1 (else a vector fma, a scalar
# multiply-then-add). Transcendentals (sin, exp...) are not here: vector and scalar differ.
_EXACT_NAMES = ("add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "mul.Tensor", "mul.Scalar",
                "div.Tensor", "div.Scalar", "neg.default", "abs.default", "maximum.default",
                "minimum.default", "relu.default", "where.self", "eq.Tensor", "eq.Scalar",
                "ne.Tensor", "ne.Scalar", "lt.Tensor", "lt.Scalar", "gt.Tensor", "gt.Scalar",
                "le.Tensor", "le.Scalar", "ge.Tensor", "ge.Scalar")
_EXACT_INPLACE_NAMES = ("add_.Tensor", "add_.Scalar", "sub_.Tensor", "sub_.Scalar", "mul_.Tensor",
                        "mul_.Scalar", "div_.Tensor", "div_.Scalar", "neg_.default", "abs_.default",
                        "relu_.default", "copy_.default", "fill_.Scalar", "zero_.default")


def _aten_ops(names: tuple[str, ...]) -> frozenset:
    found = []
    for name in names:
        packet, overload = name.split(".")
        op = getattr(getattr(aten, packet, None), overload, None)
        if op is not None:
            found.append(op)
    return frozenset(found)


EXACT_POINTWISE = _aten_ops(_EXACT_NAMES)
# S2f: their in-place forms, which write `self` (the first argument) and return it
EXACT_INPLACE = _aten_ops(_EXACT_INPLACE_NAMES)

# S2d: look only at sizes
SIZE_ONLY = frozenset({aten.sym_size.int, aten.sym_numel.default})


def _tensors(val: Any) -> list[torch.Tensor]:
    if isinstance(val, torch.Tensor):
        return [val]
    if isinstance(val, (list, tuple)):
        return [v for v in val if isinstance(v, torch.Tensor)]
    return []


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Size, stride, storage offset and dtype provably equal."""
    if a.dtype != b.dtype or a.dim() != b.dim():
        return False
    pairs = zip((*a.shape, *a.stride(), a.storage_offset()), (*b.shape, *b.stride(), b.storage_offset()))
    return all(statically_equal(x, y) for x, y in pairs)


def provably_non_overlapping(fake: torch.Tensor) -> bool:
    """No two elements share an address: going from the smallest stride out, each stride
    exceeds the furthest offset the dims inside it reach. Unknown: False."""
    dims = [d for d in range(fake.dim()) if not statically_equal(fake.shape[d], 1)]
    strides = fake.stride()
    if not all(type(strides[d]) is int for d in dims):
        return False
    reach: Any = 0
    for d in sorted(dims, key=lambda d: strides[d]):
        if not statically_true(strides[d] > reach):
            return False
        reach = reach + strides[d] * (fake.shape[d] - 1)
    return True


#: memory formats whose clone is its source's elements in a layout S2 checks every reader against
_VALUE_FORMATS = (torch.preserve_format, torch.contiguous_format)


def _plain_clone_of_view(clone: Node, source: Node) -> bool:
    """S1."""
    fake_clone, fake_source = fake_tensor(clone), fake_tensor(source)
    if fake_clone is None or fake_source is None:
        return False
    # `x.contiguous()` (how a provider that does not know the pass makes dense rows) clones with
    # contiguous_format: the same elements as a plain clone, only its layout is fixed
    memory_format = clone.kwargs.get("memory_format", torch.preserve_format)
    if len(clone.args) != 1 or set(clone.kwargs) - {"memory_format"} or memory_format not in _VALUE_FORMATS:
        return False
    if fake_clone.dtype != fake_source.dtype or fake_clone.dim() != fake_source.dim():
        return False
    if not all(statically_equal(a, b) for a, b in zip(fake_clone.shape, fake_source.shape)):
        return False
    return provably_non_overlapping(fake_source)


def _schema_arguments(call: Node) -> list[tuple[str, object]]:
    schema = call.target._schema.arguments
    found = [(schema[i].name, value) for i, value in enumerate(call.args[:len(schema)])]
    return found + [(name, value) for name, value in call.kwargs.items()]


def _kernel_takes(user: Node, values: dict[Node, Any]) -> bool:
    """S2b: every argument that carries a changed value is declared to take it."""
    for name, value in _schema_arguments(user):
        if isinstance(value, Node):
            if value in values and not accepts_layout(user.target, name, values[value]):
                return False
        elif isinstance(value, (list, tuple, dict)) and any(
                isinstance(v, Node) and v in values for v in (value.values() if isinstance(value, dict) else value)):
            return False  # tensor lists: not declared per element
    return True


def _reader_kind(target: OpOverload) -> str | None:
    """S2c: "copy", "strided-kernel" or "iterator" for a functional aten op (no alias
    annotation anywhere) that reads any layout with results that may depend on it as said
    above; None for anything else."""
    if target.namespace != "aten" or any(a.alias_info is not None for a in target._schema.arguments):
        return None
    if any(r.alias_info is not None for r in target._schema.returns):
        return None
    if target in COPY_READERS:
        return "copy"
    if target in EXACT_POINTWISE:
        return "exact"
    if target in STRIDED_KERNEL_READERS:
        return "strided-kernel"
    if target in ITERATOR_READERS or torch.Tag.pointwise in target.tags:
        return "iterator"
    return None


def _traversal(fake: torch.Tensor, merges: bool) -> tuple | None:
    """How a kernel walks `fake`: its dims of more than one element from the smallest stride
    out, which has stride 1, and (`merges`) which neighbours are contiguous with each other."""
    dims = [d for d in range(fake.dim()) if not statically_equal(fake.shape[d], 1)]
    strides = fake.stride()
    if not all(type(strides[d]) is int for d in dims):
        return None
    order = sorted(dims, key=lambda d: (strides[d], -d))
    unit = tuple(d for d in order if strides[d] == 1)
    if not merges:
        return tuple(order), unit
    joined = tuple(statically_equal(strides[outer], strides[inner] * fake.shape[inner])
                   for inner, outer in zip(order, order[1:]))
    return tuple(order), unit, joined


def _same_arithmetic(user: Node, kind: str, values: dict[Node, Any]) -> bool:
    """S2c: every changed input of the reader is walked as before (bit-identical results);
    S2e: exact pointwise ops need no such walk, only alpha 1."""
    if kind == "copy":
        return True
    if kind == "exact":
        return _alpha_is_one(user)
    for arg in user.all_input_nodes:
        if arg in values:
            old, new = fake_tensor(arg), values[arg]
            if old is None or not isinstance(new, torch.Tensor):
                return False
            before, after = _traversal(old, kind == "iterator"), _traversal(new, kind == "iterator")
            if before is None or before != after:
                return False
    return True


def _alpha_is_one(call: Node) -> bool:
    """add/sub's `alpha` absent or 1 (the only schema argument after `other` of these ops)."""
    alpha = call.kwargs.get("alpha", call.args[2] if len(call.args) > 2 else 1)
    return type(alpha) in (int, float) and alpha == 1


def _rerun_exact(user: Node, values: dict[Node, Any], fake_mode: Any) -> Any:
    """An exact aten op's value on the new layout (S2e, S2f); None when re-running it fails."""
    try:
        return rerun_on_fakes(user, values, fake_mode)
    except Exception:
        log.debug("cleanpass: re-running %s on the new layout failed", user.name, exc_info=True)
        return None


def _exact_writer(user: Node, values: dict[Node, Any], fake_mode: Any) -> str | None:
    """S2f: an exact in-place op (or `copy_`) reading or writing changed values; its result is
    `self`, so when `self` changed its readers are checked in turn."""
    if not _alpha_is_one(user):
        return decisions.STRIDED_USER
    new = _rerun_exact(user, values, fake_mode)
    if new is None:
        return decisions.STRIDED_UNVERIFIED
    written = user.args[0] if user.args else None
    if isinstance(written, Node) and written in values:
        values[user] = new
    return None


def _still_a_view(user: Node, new: Any, values: dict[Node, Any]) -> bool:
    source = values.get(user.args[0]) if isinstance(user.args[0], Node) else None
    outputs = _tensors(new)
    return source is not None and bool(outputs) and all(
        storage_key(out) is not None and storage_key(out) == storage_key(source) for out in outputs)


def _visit(user: Node, values: dict[Node, Any], fake_mode: Any) -> str | None:
    """Check one reader of changed values (S2, S3); record its new value when it changes."""
    if user.op == "output":
        return decisions.STRIDED_OUTPUT
    target = user.target
    if user.op != "call_function":
        return decisions.STRIDED_USER
    if target is operator.getitem:
        parent = user.args[0]
        if not isinstance(parent, Node) or parent not in values:
            return decisions.STRIDED_USER
        values[user] = values[parent][user.args[1]]
        return None
    if not isinstance(target, OpOverload):
        return decisions.STRIDED_USER
    if target in SIZE_ONLY:
        return None
    if target in VIEW_OPS:
        try:
            new = rerun_on_fakes(user, values, fake_mode)
        except ShapeGuardNeeded:  # valid for some sizes only
            return decisions.STRIDED_UNVERIFIED
        except Exception:  # e.g. view of dims the new strides cannot merge
            return decisions.STRIDED_VIEW_INVALID
        if not _still_a_view(user, new, values):  # reshape would copy: writes through it would be lost
            return decisions.STRIDED_VIEW_INVALID
        values[user] = new
        return None
    if declares_any_layout(target):
        return None if _kernel_takes(user, values) else decisions.STRIDED_USER
    if target in EXACT_INPLACE:
        return _exact_writer(user, values, fake_mode)
    kind = _reader_kind(target)
    if kind is not None:
        if not _same_arithmetic(user, kind, values):
            return decisions.STRIDED_USER
        new = _rerun_exact(user, values, fake_mode)
        if new is None:
            return decisions.STRIDED_UNVERIFIED
        old, fresh = _tensors(user.meta.get("val")), _tensors(new)
        if len(old) != len(fresh) or not all(same_layout(a, b) for a, b in zip(old, fresh)):
            values[user] = new
        return None
    return decisions.STRIDED_USER


def _walk(clone: Node, fake_source: torch.Tensor, facts: GraphFacts) -> tuple[str | None, dict[Node, Any]]:
    """(reason to keep, or None; the new fake values of the readers whose value changes) when
    c's users get `fake_source` in place of c's value."""
    fake_mode = fake_mode_of(fake_source)
    if fake_mode is None:
        return decisions.STRIDED_UNVERIFIED, {}
    values: dict[Node, Any] = {clone: fake_source}
    queue = [(facts.position[user], index, user) for index, user in enumerate(clone.users)]
    heapq.heapify(queue)
    seen: set[Node] = set()
    counter = len(queue)
    while queue:  # graph order: a reader is checked after every changed value it takes
        _, _, user = heapq.heappop(queue)
        if user in seen:
            continue
        seen.add(user)
        reason = _visit(user, values, fake_mode)
        if reason is not None:
            log.debug("cleanpass: %s keeps %s: %s", user.name, clone.name, reason)
            return reason, {}
        if user in values:
            for reader in user.users:
                counter += 1
                heapq.heappush(queue, (facts.position[reader], counter, reader))
    del values[clone]
    return None, values


def strided_verdict(clone: Node, source: Node, facts: GraphFacts) -> str | None:
    """None when `clone` may go although its layout differs from `source`'s (S1-S4); the new
    fake values of its readers wait in `clone.meta[RELAYOUT_KEY]` for `relayout`. Else the
    reason to keep it."""
    if not _plain_clone_of_view(clone, source):
        return decisions.LAYOUT_DIFFERS
    reason, values = _walk(clone, fake_tensor(source), facts)
    if reason is None:
        clone.meta[RELAYOUT_KEY] = values
    return reason


def _viewed_view(clone: Node, source: Node) -> bool:
    """A clone of part of a storage (a view; fake tensors do not say so) that its users view
    in turn: their fake values name c's storage."""
    known = _makes_view.known
    for user in clone.users:  # a loop, not any(): this runs for every removed clone
        target = user.target
        found = known.get(id(target))
        if found is None:
            found = _makes_view(target)
        if found:
            break
    else:
        return False
    fake_source = fake_tensor(source)
    if fake_source is None:
        return False
    try:
        nbytes = fake_source.untyped_storage().nbytes()
    except Exception:  # no storage to tell: refresh anyway, it is only a cost
        return True
    return not statically_equal_scaled(nbytes, fake_source.numel(), fake_source.element_size())


def relayout(clone: Node, source: Node, facts: GraphFacts, removed: bool) -> None:
    """After the decision on `clone`: when it was removed, write its readers' new fake values.

    A clone removed with its source's layout changes no reader's layout, but the views made
    from it still name its storage; where the source is itself a view they are refreshed too
    (best effort), so later decisions see them overlap only what they really overlap.
    """
    values = clone.meta.pop(RELAYOUT_KEY, None)
    if not removed:
        return
    if values is None:
        if not _viewed_view(clone, source):
            return
        reason, values = _walk(clone, fake_tensor(source), facts)
        if reason is not None:
            return
    for node, value in values.items():
        node.meta["val"] = value
