"""Condition 1's exception: a read that follows a `copy_` overwriting all of the source (after the
clone's last write) sees the copied value; any other read of the old value keeps the clone."""
from __future__ import annotations

import torch

from cleanpass import decisions

from .helpers import run_pass
from .ops import ops


def test_a_read_after_the_source_is_overwritten_whole_does_not_keep_the_clone():
    def f(x, y):
        c = x.clone()
        ops.scale_(c, 2.0)
        doubled = c * 2
        x.copy_(y * 3)  # the program's own epilogue: x's old value is gone
        return doubled, x

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6))
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


def test_a_read_before_the_overwrite_keeps_the_clone():
    def f(x, y):
        c = x.clone()
        ops.scale_(c, 2.0)
        old = x + 1  # still wants the old x
        x.copy_(y * 3)
        return c * 2, old, x

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_an_overwrite_of_part_of_the_source_keeps_the_clone():
    def f(x, y):
        c = x.clone()
        ops.scale_(c, 2.0)
        doubled = c * 2
        x[:2].copy_(y[:2])  # rows 2.. of x keep their old value
        return doubled, x

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6), donated=(0,))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_a_write_to_the_clone_after_the_overwrite_keeps_the_clone():
    def f(x, y):
        c = x.clone()
        ops.scale_(c, 2.0)
        x.copy_(y * 3)
        ops.scale_(c, 5.0)  # would land in x after the copy
        return c * 2, x

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6))
    assert out.report.clones_after == 1
    assert out.check.ok


def test_an_overwrite_through_a_removed_clone_counts_as_one_of_its_source():
    """Once `c = x.clone()` is removed, `c.copy_(...)` overwrites x: a removed clone's storage
    stands for its source's (same layout), so later decisions see the overwrite."""
    def f(x, y):
        c = x.clone()  # removed: only read before the copy
        doubled = c * 2
        e = x.clone()
        ops.write_list([e])  # lands in x once e is removed (a kernel not declared effect-free)
        c.copy_(y * 3)
        return doubled, c

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6), donated=(0,))
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


def test_a_partial_overwrite_through_a_removed_clone_keeps_the_clone():
    def f(x, y):
        c = x.clone()
        doubled = c * 2
        e = x.clone()
        ops.write_list([e])  # not declared effect-free: stays though e is never read
        c[:2].copy_(y[:2])  # rows 2.. of x would keep e's write
        return doubled, c

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6), donated=(0,))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok
