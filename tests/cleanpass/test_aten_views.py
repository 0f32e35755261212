"""aten pointwise ops on strided, offset and split views (cleanpass.strided S2e, S2f), and
in-place writes into sibling parts of a clone's source (conditions 1 and 2, exact overlap).

Each removal has its counter-case: a written part that overlaps the clone's source by one
element, a reader of the source after the write, an op whose bits depend on the traversal.
"""
from __future__ import annotations

import pytest
import torch

from cleanpass import decisions

from .helpers import run_pass

MODES = ["fake", "real"]


def _qkv(x, w):
    return x @ w  # (8, 24): q, k, v are column blocks of 8


def _inputs():
    return torch.randn(8, 16), torch.randn(16, 24)


@pytest.mark.parametrize("mode", MODES)
def test_an_exact_functional_reader_of_a_column_block_takes_its_layout(mode):
    """S2e: `c * 2 + 1` computes each element alone, correctly rounded: same bits on q's strides."""
    def f(x, w):
        qkv = _qkv(x, w)
        c = qkv[:, 8:16].clone()
        return c * 2 + 1, qkv.sum(0)

    out = run_pass(f, *_inputs(), mode=mode)
    assert len(out.report.removed) == 1 and out.report.kept == []
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("mode", MODES)
def test_an_exact_inplace_writer_of_a_column_block_takes_its_layout(mode):
    """S2f: `c.mul_(2)` then `c.add_(1)` write q's elements in place; nothing reads qkv after."""
    def f(x, w):
        qkv = _qkv(x, w)
        c = qkv[:, :8].clone()
        c.mul_(2).add_(1)
        return c - 3

    out = run_pass(f, *_inputs(), mode=mode)
    assert len(out.report.removed) == 1
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("mode", MODES)
def test_a_reader_of_the_source_after_the_inplace_write_keeps_the_clone(mode):
    """Counter-case of S2f: qkv is read after c's write, which would land in it (condition 1)."""
    def f(x, w):
        qkv = _qkv(x, w)
        c = qkv[:, :8].clone()
        c.mul_(2)
        return c - 3, qkv.sum(0)

    out = run_pass(f, *_inputs(), mode=mode)
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_an_inexact_reader_whose_traversal_changes_keeps_the_clone():
    """sin's vector loop and scalar tail give different bits, and every other column walks
    other elements in each: the clone stays (S2c)."""
    def f(x):
        c = x[:, ::2].clone()
        return torch.sin(c)

    out = run_pass(f, torch.randn(8, 16))
    assert out.reasons == [decisions.STRIDED_USER]


def test_add_with_alpha_is_not_exact():
    """`add(c, y, alpha=2)`: a vector fma against a scalar multiply-then-add; not S2e."""
    def f(x, y):
        c = x[:, ::2].clone()
        return torch.add(c, y, alpha=2.0)

    out = run_pass(f, torch.randn(8, 16), torch.randn(8, 8))
    assert out.reasons == [decisions.STRIDED_USER]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("write", ["copy_", "mul_", "split_mul_"])
def test_a_write_into_the_other_half_after_a_clone_of_one_half(mode, write):
    """Family 3: c = clone of rows 0..3; then the sibling rows are written in place (copy_ into
    a slice, mul_ of an offset half, mul_ of a split part); c is read after. Disjoint: removed."""
    def f(x, y):
        buf = x * 1
        c = buf[:4].clone()
        if write == "copy_":
            buf[4:].copy_(y)
        elif write == "mul_":
            buf[4:].mul_(3)
        else:
            buf.split(4)[1].mul_(3)
        c.add_(1)
        return c * buf[4:]

    out = run_pass(f, torch.randn(8, 6), torch.randn(4, 6), mode=mode)
    assert len(out.report.removed) == 1, out.reasons
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("start", [23, 24])
def test_a_written_part_overlapping_the_source_by_one_element_keeps_the_clone(mode, start):
    """Counter-case: elements 0..23 are cloned, then elements start..start+23 are overwritten
    while c is still read. start=24 is disjoint (removed); start=23 shares one element, which
    would change c's last element (kept, condition 2), and the reference policy, which removes
    it, computes a wrong result."""
    def f(x, y):
        flat = (x * 1).view(-1)  # 48 elements
        c = flat[:24].clone()
        flat[start:start + 24].copy_(y)
        return c * 2, flat * 1

    args = torch.randn(8, 6), torch.randn(24)
    out = run_pass(f, *args, mode=mode)
    assert out.check.ok, out.check.problems
    if start == 24:
        assert len(out.report.removed) == 1
        return
    assert out.reasons == [decisions.SOURCE_WRITTEN_WHILE_LIVE]
    reference = run_pass(f, *args, mode=mode, policy="vllm")
    assert len(reference.report.removed) == 1 and not reference.check.ok
