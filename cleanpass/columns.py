"""Proofs that two views of one storage share no element, for `alias.may_overlap`.

torch's overlap helper (`compute_overlapping_tensors`) cannot be trusted either way: it answers
"may overlap" for `qkv[:, 768:].view(t, 2, 1, 128)` against `qkv[:, :512]`, and (torch 2.13)
"no overlap" for `b[1:5]` against `b[:, :8]`, which share 32 elements. `disjoint_elements`
proves disjointness from strides alone, three ways, and answers False whenever none applies:

1. address ranges: the last element of one comes before the first of the other;
2. residues: every stride of both is a multiple of g and the offsets differ modulo g
   (`b[:, ::2]` against `b[:, 1::2]`);
3. column blocks (q, k and v of a fused qkv projection, and views made from them, expanded ones
   included): column splits interleave in memory, so ranges cannot separate them. With R a row
   stride both views share, an element's address is
`row * R + column`; a dim whose stride is a multiple of R moves whole rows, every other dim
moves within the row. When each view's columns stay inside one row (its start, `offset mod R`,
plus the reach of its within-row dims is below R), the views are disjoint iff their column
intervals are. Symbolic row counts are fine; anything else unknown answers "not provably".
"""
from __future__ import annotations

import math

import torch

from ._compat import statically_true


def _static(values: tuple) -> bool:
    return all(type(v) is int for v in values)


def _row_stride(fake: torch.Tensor) -> int | None:
    """The largest stride among dims that may have more than one element."""
    strides = [st for size, st in zip(fake.shape, fake.stride()) if not (type(size) is int and size <= 1)]
    return max(strides) if strides and _static(tuple(strides)) else None


def _column_interval(fake: torch.Tensor, row: int) -> tuple[int, int] | None:
    """[first, last] column the view touches in any row of stride `row`; None if unknown or
    if the view runs past the end of a row."""
    offset, reach = fake.storage_offset(), 0
    if type(offset) is not int or not _static(tuple(fake.stride())):
        return None
    for size, stride in zip(fake.shape, fake.stride()):
        if type(size) is int and size <= 1:
            continue
        if stride % row == 0:  # moves whole rows (stride 0 included): the column stays
            continue
        if type(size) is not int or stride < 0:
            return None
        reach += stride * (size - 1)
    first = offset % row
    return (first, first + reach) if first + reach < row else None


def disjoint_columns(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True only when `a` and `b` (views of one storage) provably share no element."""
    row = _row_stride(a)
    if row is None or row <= 0 or row != _row_stride(b):
        return False
    first, second = _column_interval(a, row), _column_interval(b, row)
    if first is None or second is None:
        return False
    return first[1] < second[0] or second[1] < first[0]


def _address_range(fake: torch.Tensor) -> tuple[object, object]:
    """(first, last) element offset; symbolic where the sizes are."""
    last = fake.storage_offset()
    for size, stride in zip(fake.shape, fake.stride()):
        last = last + (size - 1) * stride
    return fake.storage_offset(), last


def _disjoint_ranges(a: torch.Tensor, b: torch.Tensor) -> bool:
    if any(statically_true(size == 0) for size in (*a.shape, *b.shape)):
        return True  # no elements
    if any(not statically_true(stride >= 0) for stride in (*a.stride(), *b.stride())):
        return False
    (first_a, last_a), (first_b, last_b) = _address_range(a), _address_range(b)
    return statically_true(last_a < first_b) or statically_true(last_b < first_a)


def _disjoint_residues(a: torch.Tensor, b: torch.Tensor) -> bool:
    strides = [st for t in (a, b) for size, st in zip(t.shape, t.stride())
               if not (type(size) is int and size <= 1)]
    offsets = (a.storage_offset(), b.storage_offset())
    if not _static(tuple(strides) + offsets):
        return False
    step = math.gcd(*strides) if strides else 0
    return step > 1 and offsets[0] % step != offsets[1] % step


def disjoint_elements(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True only when `a` and `b` (views of one storage) provably share no element."""
    if a.dim() == 0 or b.dim() == 0:
        return _disjoint_ranges(a, b)
    return _disjoint_ranges(a, b) or _disjoint_residues(a, b) or disjoint_columns(a, b)
