"""Exact overlap of strided views (cleanpass.overlap): checked against brute force, and what it
changes in the pass (a disjoint write no longer stops folding; an overlapping one still does)."""
from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

from cleanpass.overlap import view_covers, views_overlap

from .helpers import run_pass
from .ops import ops


def _bytes(view: torch.Tensor) -> set[int]:
    size = view.element_size()
    found: set[int] = set()
    for index in itertools.product(*[range(n) for n in view.shape]):
        element = view.storage_offset() + sum(i * s for i, s in zip(index, view.stride()))
        found.update(range(element * size, element * size + size))
    return found


def _random_view(base: torch.Tensor, rng: random.Random) -> torch.Tensor:
    view = base
    for _ in range(rng.randint(1, 3)):
        dim = rng.randrange(view.dim())
        kind = rng.random()
        if kind < 0.5 and view.shape[dim] > 1:  # a slice, maybe strided
            start = rng.randrange(view.shape[dim])
            stop = rng.randint(start + 1, view.shape[dim])
            step = rng.randint(1, 3)
            view = view[(slice(None),) * dim + (slice(start, stop, step),)]
        elif kind < 0.7 and view.dim() >= 2:
            view = view.transpose(0, view.dim() - 1)
        elif kind < 0.8:
            view = view.unsqueeze(0).expand(2, *view.shape)  # stride 0
    return view


def test_agrees_with_brute_force_on_random_views_and_splits():
    rng = random.Random(0)
    disjoint = 0
    for _ in range(400):
        shape = [rng.randint(2, 6) for _ in range(rng.randint(1, 3))]
        base = torch.empty(*shape, dtype=rng.choice([torch.float32, torch.float16]))
        dim = rng.randrange(base.dim())
        cut = rng.randint(1, shape[dim] - 1)
        step = rng.randint(1, 3)
        first = [base.narrow(dim, 0, cut), base[(slice(None),) * dim + (slice(0, None, step),)]]
        second = [base.narrow(dim, cut, shape[dim] - cut),
                  base[(slice(None),) * dim + (slice(rng.randrange(step), None, step),)]]
        which = rng.randrange(2)
        a, b = first[which], second[which]
        if rng.random() < 0.4:
            a, b = _random_view(a, rng), _random_view(b, rng)
        truth = bool(_bytes(a) & _bytes(b))
        disjoint += not truth
        assert views_overlap(a, b) is truth, (a.shape, a.stride(), a.storage_offset(),
                                              b.shape, b.stride(), b.storage_offset())
    assert disjoint > 100  # the sample is not all overlapping pairs


@pytest.mark.parametrize("make_a,make_b,expected", [
    (lambda x: x[:, :3], lambda x: x[:, 3:], False),  # column split: interleaved rows
    (lambda x: x[:, 0::2], lambda x: x[:, 1::2], False),  # even and odd columns
    (lambda x: x[:, 0::2], lambda x: x[:, 3:], True),  # column 4 is in both
    (lambda x: x.t()[:3], lambda x: x[:, 3:], False),  # a transposed view of the first half
    (lambda x: x[0:2], lambda x: x[1:3], True),
    (lambda x: x.view(2, 2, 6)[..., ::2], lambda x: x.view(2, 2, 6)[..., 1::2], False),
    (lambda x: x.view(2, 2, 6)[..., :3], lambda x: x.view(2, 2, 6)[..., 3:], False),
    (lambda x: x[:, :4].view(torch.int32), lambda x: x[:, 4:], False),  # other dtype, same bytes
    (lambda x: x.view(torch.float16)[:, :9], lambda x: x[:, 4:], True),  # half of column 4
    (lambda x: x[:0], lambda x: x, False),  # empty
])
def test_named_cases(make_a, make_b, expected):
    with FakeTensorMode():
        x = torch.empty(4, 6)
        assert views_overlap(make_a(x), make_b(x)) is expected


def test_symbolic_sizes_are_not_decided():
    mode = FakeTensorMode(shape_env=ShapeEnv())
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC, DimDynamic.STATIC])
    x = mode.from_tensor(torch.empty(4, 6), symbolic_context=context)
    assert views_overlap(x[:, :3], x[:, 3:]) is None


def test_a_search_past_its_budget_is_unknown(monkeypatch):
    monkeypatch.setattr("cleanpass.overlap.MAX_STEPS", 1)
    with FakeTensorMode():
        x = torch.empty(4, 6)
        assert views_overlap(x[:, 0::2], x[:, 1::2]) is None


def test_a_write_to_the_odd_columns_does_not_stop_folding_a_clone_of_the_even_ones():
    def f(x):
        s = x * 2
        c = s[:, 0::2].clone()
        ops.scale_(s[:, 1::2], 0.5)  # between the clone and its kernel, on other bytes
        ops.scale_(c, 3.0)
        return c, s

    out = run_pass(f, torch.randn(4, 6), fold=True)
    assert [d.clone for d in out.report.folded] == ["clone"]
    assert out.check.ok, out.check.problems


def test_a_write_that_overlaps_the_source_stops_folding():
    def f(x):
        s = x * 2
        c = s[:, 0::2].clone()
        ops.scale_(s[:, 3:], 0.5)  # column 4 is part of the source
        ops.scale_(c, 3.0)
        return c, s

    out = run_pass(f, torch.randn(4, 6), fold=True)
    assert out.report.folded == [] and out.report.clones_after == 1
    assert out.check.ok


def test_covers_never_claims_a_byte_the_outer_view_lacks():
    rng = random.Random(1)
    claimed = 0
    for _ in range(400):
        base = torch.empty(*[rng.randint(1, 5) for _ in range(rng.randint(1, 3))])
        outer = base if rng.random() < 0.3 else _random_view(base, rng)
        inner = _random_view(base, rng)
        if view_covers(outer, inner):
            claimed += 1
            assert _bytes(inner) <= _bytes(outer)
    assert claimed > 50


def test_covers_a_dense_view_and_not_a_strided_one():
    with FakeTensorMode():
        x = torch.empty(4, 6)
        assert view_covers(x, x[:, 1::2]) and view_covers(x.t(), x[1:3])
        assert view_covers(x[1:3], x[2, :4]) and not view_covers(x[1:3], x[3])
        assert not view_covers(x[:, ::2], x[:, ::2][:2])  # gaps: unsure, so no
