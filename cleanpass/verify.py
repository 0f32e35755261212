"""The differential checker: run a graph before and after the pass and compare bit for bit.

It backs every claim the pass makes. On fresh random inputs (never zeros) it reports:
outputs that are not bit-identical, a non-donated input whose final value differs from the
original graph's, a parameter or buffer the transformed graph writes, and an output that newly
aliases an input or another output. Both graphs run with every fresh allocation they make
(`empty`, `empty_strided`, `empty_like`, `new_empty`) filled with poison (NaN, or the largest
integer), so a kernel that leaves part of a buffer the pass allocated unwritten shows up
instead of reading whatever the allocator left there.

A graph traced with symbolic sizes is run at its trace-time sizes, and, with `other_sizes`, at
other values of its size symbols too: the pass adds no guard, so what it decides must hold at
every size the graph may run at (where the shape environment's ranges and guards allow).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch.fx import GraphModule

from ._compat import TorchDispatchMode, canonical_expr, holds_at, shape_env_of, size_hint, tree_leaves, value_at

_INT_VIEW = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass
class VerifyResult:
    """`ok` is True when no trial found a problem; `problems` says what differed, per trial."""

    ok: bool = True
    problems: list[str] = field(default_factory=list)
    #: the `other_sizes` values both graphs ran at (others were not allowed, or did not run)
    sizes_checked: list[int] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)


_aten = torch.ops.aten
_ALLOCATIONS = frozenset({_aten.empty.memory_format, _aten.empty_strided.default,
                          _aten.empty_like.default, _aten.new_empty.default,
                          _aten.new_empty_strided.default})


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill `t` with a value no kernel computes by accident: NaN, or the dtype's largest value."""
    if t.dtype.is_floating_point or t.dtype.is_complex:
        return t.fill_(float("nan"))
    if t.dtype == torch.bool:
        return t.fill_(True)
    return t.fill_(torch.iinfo(t.dtype).max)


class PoisonedAllocations(TorchDispatchMode):
    """While active, every fresh allocation comes back filled with `poison`."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if func in _ALLOCATIONS and isinstance(out, torch.Tensor) and out.numel():
            poison(out)
        return out


def _concrete(value: Any, assignment: dict | None = None) -> int:
    if assignment is not None:
        found = value_at(value, assignment)
        if found is None:
            raise ValueError(f"no size for {value!r} at {assignment}")
        return found
    hint = size_hint(value)
    if hint is None:
        raise ValueError(f"no size for {value!r}: the checker needs sizes known at trace time")
    return hint


def random_like(fake: torch.Tensor, generator: torch.Generator, assignment: dict | None = None) -> torch.Tensor:
    """A real tensor with `fake`'s dtype, size and strides (symbolic ones at their trace-time
    values, or at `assignment`), filled with nonzero random values."""
    size = [_concrete(s, assignment) for s in fake.shape]
    stride = [_concrete(s, assignment) for s in fake.stride()]
    out = torch.empty_strided(size, stride, dtype=fake.dtype, device="cpu")
    if fake.dtype == torch.bool:
        out.copy_(torch.randint(0, 2, size, generator=generator).bool())
    elif fake.dtype.is_floating_point or fake.dtype.is_complex:
        values = torch.randn(size, generator=generator, dtype=torch.float64)
        values = torch.where(values == 0, torch.ones_like(values), values)
        out.copy_(values)
    else:
        out.copy_(torch.randint(1, 8, size, generator=generator))
    return out


def make_inputs(gm: GraphModule, seed: int = 0, assignment: dict | None = None) -> list[Any]:
    """Random inputs from the placeholders' `meta["val"]` (fake tensors or plain values), with
    symbolic sizes at their trace-time values or at `assignment` (symbol -> int)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for node in _placeholders(gm):
        if "val" not in node.meta:
            raise ValueError(f"placeholder {node.name} has no meta['val']; pass inputs= explicitly")
        val = node.meta["val"]
        inputs.append(random_like(val, generator, assignment) if isinstance(val, torch.Tensor)
                      else _concrete(val, assignment))
    return inputs


def _placeholders(gm: GraphModule) -> list[Any]:
    return [node for node in gm.graph.nodes if node.op == "placeholder"]


def size_assignments(gm: GraphModule, values: Sequence[int]) -> list[tuple[int, dict]]:
    """(value, assignment) for each value at which every size symbol of `gm`'s inputs may be set
    to it: within each symbol's range, every guard of the shape environment true."""
    symbols = set()
    for node in _placeholders(gm):
        val = node.meta.get("val")
        sizes = (*val.shape, *val.stride()) if isinstance(val, torch.Tensor) else (val,)
        for size in sizes:
            expr = canonical_expr(size)
            if expr is not None:
                symbols |= expr.free_symbols
    env = shape_env_of(gm.graph)
    if not symbols or env is None:
        return []
    found = []
    for value in values:
        assignment = {symbol: value for symbol in symbols}
        if holds_at(env, assignment):
            found.append((value, assignment))
    return found


def bits_equal(a: Any, b: Any) -> bool:
    """Same dtype, shape and bits (NaNs with equal payloads are equal, -0.0 != 0.0)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return a == b
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.is_floating_point and a.element_size() in _INT_VIEW:
        view = _INT_VIEW[a.element_size()]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


def _copy(values: Sequence[Any]) -> list[Any]:
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def _aliasing(inputs: Sequence[Any], outputs: Sequence[Any]) -> set[tuple[str, int, int]]:
    """Pairs (kind, i, j): output i shares storage with input j, or with output j (j > i)."""
    def storage(t: Any) -> int | None:
        return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) else None

    found = set()
    for i, out in enumerate(outputs):
        key = storage(out)
        if key is None:
            continue
        found.update(("input", i, j) for j, inp in enumerate(inputs) if storage(inp) == key)
        found.update(("output", i, j) for j, other in enumerate(outputs)
                     if j > i and storage(other) == key)
    return found


def _constants(gm: GraphModule) -> list[tuple[str, torch.Tensor]]:
    """Parameters and buffers a graph reads through `get_attr`: inputs nobody donates."""
    return list(gm.named_parameters()) + list(gm.named_buffers())


def check(before: GraphModule, after: GraphModule, donated: Sequence[int] = (),
          inputs: Sequence[Any] | None = None, trials: int = 3, seed: int = 0,
          other_sizes: Sequence[int] = ()) -> VerifyResult:
    """Run both graphs on the same random inputs `trials` times and report any difference.

    `other_sizes`: for a graph with symbolic sizes, one more trial per value with every size
    symbol set to it (`size_assignments`), where the original graph runs at it; the values run
    are in `sizes_checked`.
    """
    result = VerifyResult()
    donated = set(donated)
    for trial in range(trials):
        base = list(inputs) if inputs is not None and trial == 0 else make_inputs(before, seed + trial)
        if not _trial(before, after, base, donated, result, f"trial {trial}"):
            return result
    for value, assignment in size_assignments(before, other_sizes):
        try:
            base = make_inputs(before, seed, assignment)
        except ValueError:  # a size the assignment does not decide
            continue
        label = f"all sizes {value}"
        if _trial(before, after, base, donated, result, label, original_must_run=False):
            result.sizes_checked.append(value)
        elif not result.ok:
            return result
    return result


def _trial(before: GraphModule, after: GraphModule, base: list[Any], donated: set[int], result: VerifyResult,
           label: str, original_must_run: bool = True) -> bool:
    """One run of both graphs on copies of `base`, differences recorded in `result`. False when
    a graph raised: the transformed one is a failure, the original one is too unless it need
    not run at these inputs (then nothing is recorded)."""
    before_inputs, after_inputs = _copy(base), _copy(base)
    try:
        with PoisonedAllocations():
            before_out = tree_leaves(before(*before_inputs))
    except Exception as error:
        if original_must_run:
            result.fail(f"{label}: the original graph raised {error!r}")
        return False
    constants = {name: t.clone() for name, t in _constants(after)}
    try:
        with PoisonedAllocations():
            after_out = tree_leaves(after(*after_inputs))
    except Exception as error:
        result.fail(f"{label}: the transformed graph raised {error!r}")
        return False
    if len(before_out) != len(after_out):
        result.fail(f"{label}: {len(before_out)} outputs before, {len(after_out)} after")
        return True
    for i, (a, b) in enumerate(zip(before_out, after_out)):
        if not bits_equal(a, b):
            result.fail(f"{label}: output {i} differs")
    for j, (a, b) in enumerate(zip(before_inputs, after_inputs)):
        if j not in donated and not bits_equal(a, b):
            result.fail(f"{label}: non-donated input {j} ends with a different value")
    for name, value in _constants(after):
        if not bits_equal(value, constants[name]):
            result.fail(f"{label}: the graph wrote its constant {name}")
    new = _aliasing(after_inputs, after_out) - _aliasing(before_inputs, before_out)
    for kind, i, j in sorted(new):
        if kind == "input" and j in donated:
            continue
        result.fail(f"{label}: output {i} newly aliases {kind} {j}")
    return True
