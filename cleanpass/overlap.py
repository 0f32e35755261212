"""Exact overlap of two strided views of one storage, on bytes, for static layouts.

Byte ranges are not enough: the halves of a column split, or the even and odd columns, lie
interleaved in memory. A view touches the bytes `offset + sum(i_k * stride_k) + j` for every
index `i_k < size_k` and byte `j < itemsize` (strides in bytes), so two views share a byte when

    sum(a_k * x_k) + sum(b_k * y'_k) = D,   0 <= x_k, y'_k <= bound_k

has a solution (the second view's indices flipped, y' = size - 1 - y, so every coefficient is
positive). That is a bounded linear Diophantine equation: solved by depth-first search from the
largest coefficient, where the smaller terms' reach and their gcd pin each variable to a few
values. Views of real programs (splits, slices, strides, transposes) resolve in a handful of
steps; a search that needs more than `MAX_STEPS` answers "unknown", as do symbolic sizes.
"""
from __future__ import annotations

from math import gcd

import torch

MAX_STEPS = 10_000


def _terms(fake: torch.Tensor) -> tuple[int, list[tuple[int, int]]] | None:
    """(byte offset, [(byte stride, largest index)]) of a view; None when not plain ints."""
    itemsize = fake.element_size()
    sizes, strides, offset = tuple(fake.shape), fake.stride(), fake.storage_offset()
    if not all(type(v) is int for v in (*sizes, *strides, offset, itemsize)):
        return None
    terms = [(stride * itemsize, size - 1) for size, stride in zip(sizes, strides)
             if size > 1 and stride != 0]
    terms.append((1, itemsize - 1))
    return offset * itemsize, terms


def _merged(terms: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Terms with equal coefficients summed (x + y ranges over every value in [0, u + v]),
    largest coefficient first, zero bounds dropped."""
    bounds: dict[int, int] = {}
    for coefficient, bound in terms:
        if bound > 0:
            bounds[coefficient] = bounds.get(coefficient, 0) + bound
    return sorted(bounds.items(), reverse=True)


def _solvable(terms: list[tuple[int, int]], target: int) -> bool | None:
    """Whether sum(c_i * z_i) = target has a solution with 0 <= z_i <= u_i; None past the budget."""
    count = len(terms)
    reach = [0] * (count + 1)  # reach[i]: the largest sum terms i.. can make
    divisor = [0] * (count + 1)  # divisor[i]: gcd of the coefficients of terms i..
    for i in range(count - 1, -1, -1):
        coefficient, bound = terms[i]
        reach[i] = reach[i + 1] + coefficient * bound
        divisor[i] = gcd(divisor[i + 1], coefficient)
    steps = 0
    stack = [(0, target)]
    while stack:
        i, rest = stack.pop()
        steps += 1
        if steps > MAX_STEPS:
            return None
        if i == count:
            if rest == 0:
                return True
            continue
        if rest < 0 or rest > reach[i] or rest % divisor[i]:
            continue
        coefficient, bound = terms[i]
        low = max(0, -((reach[i + 1] - rest) // coefficient))  # ceil((rest - reach) / c)
        high = min(bound, rest // coefficient)
        step = 1
        later = divisor[i + 1]
        if later:  # z must make rest - c*z divisible by the later terms' gcd
            common = gcd(coefficient, later)
            if rest % common:
                continue
            step = later // common
            first = (rest // common) * pow(coefficient // common, -1, step) % step if step > 1 else 0
            low += (first - low) % step
        if (high - low) // step >= MAX_STEPS:
            return None
        for z in range(low, high + 1, step):
            stack.append((i + 1, rest - coefficient * z))
    return False


def views_overlap(a: torch.Tensor, b: torch.Tensor) -> bool | None:
    """Whether two views of one storage share a byte: True/False when decided exactly, None
    when it cannot be (symbolic sizes, or a search past its budget)."""
    found_a, found_b = _terms(a), _terms(b)
    if found_a is None or found_b is None:
        return None
    if 0 in a.shape or 0 in b.shape:  # sizes are ints here: no guard
        return False
    (offset_a, terms_a), (offset_b, terms_b) = found_a, found_b
    target = offset_b - offset_a + sum(c * u for c, u in terms_b)
    return _solvable(_merged(terms_a + terms_b), target)


def _gap_free_extent(terms: list[tuple[int, int]]) -> int | None:
    """How many bytes a view spans when they form one range without gaps (each stride spans
    the ones below it); None when there may be gaps."""
    extent = 1
    for coefficient, bound in sorted(terms):
        if bound == 0:
            continue
        if coefficient != extent:
            return None
        extent *= bound + 1
    return extent


def view_covers(outer: torch.Tensor, inner: torch.Tensor) -> bool:
    """Whether every byte of `inner` is a byte of `outer` (two views of one storage): decided
    when `outer` covers one gap-free byte range, the case of a `copy_` into a whole buffer or a
    dense view of it; False whenever unsure."""
    found_outer, found_inner = _terms(outer), _terms(inner)
    if found_outer is None or found_inner is None:
        return False
    (offset_outer, terms_outer), (offset_inner, terms_inner) = found_outer, found_inner
    extent = _gap_free_extent(terms_outer)
    last_inner = offset_inner + sum(c * u for c, u in terms_inner)
    return extent is not None and offset_outer <= offset_inner and last_inner < offset_outer + extent


def fills_its_storage(fake: torch.Tensor) -> bool:
    """Whether a (fresh) tensor's storage holds exactly its bytes, gap-free from offset 0: then
    no view of that storage reaches a byte outside the tensor. False whenever unsure."""
    try:
        nbytes = fake.untyped_storage().nbytes()
    except Exception:  # tensors without storage
        return False
    found = _terms(fake)
    return (found is not None and found[0] == 0 and type(nbytes) is int
            and _gap_free_extent(found[1]) == nbytes)
