"""Views and bases: the clone goes only when no overlapping alias sees the write."""
from __future__ import annotations

import pytest
import torch

from cleanpass import decisions

from .helpers import run_pass
from .ops import ops

MODES = ["fake", "symbolic", "oblivious"]


@pytest.mark.parametrize("mode", MODES)
def test_removes_clone_of_split_half_when_other_half_read_later(mode):
    """The halves of a split share a storage but no byte: reading the other half is fine."""
    def f(x):
        s = x * 2
        first, second = s.split([4, 4], dim=0)
        c = first.clone()
        ops.scale_(c, 3.0)
        return c, second + 1

    out = run_pass(f, torch.randn(8, 16), mode=mode)
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("mode", MODES)
def test_keeps_clone_of_split_half_when_base_read_later(mode):
    def f(x):
        s = x * 2
        first, _ = s.split([4, 4], dim=0)
        c = first.clone()
        ops.scale_(c, 3.0)
        return c, s + 1

    out = run_pass(f, torch.randn(8, 16), mode=mode)
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_keeps_clone_of_base_when_view_read_later():
    def f(x):
        s = x * 2
        tail = s[2:]
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, tail * 5

    out = run_pass(f, torch.randn(8, 16))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_removes_clone_when_disjoint_slice_is_read_later():
    def f(x):
        s = x * 2
        head, tail = s[:3], s[3:]
        c = head.clone()
        ops.scale_(c, 3.0)
        return c, tail - 1

    out = run_pass(f, torch.randn(8, 16))
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


def test_keeps_clone_when_overlapping_slice_is_read_later():
    def f(x):
        s = x * 2
        head, middle = s[:4], s[2:6]
        c = head.clone()
        ops.scale_(c, 3.0)
        return c, middle - 1

    out = run_pass(f, torch.randn(8, 16))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


@pytest.mark.parametrize("mode", MODES)
def test_keeps_clone_when_reshape_permute_chain_of_source_read_later(mode):
    def f(x):
        s = x * 2
        chained = s.reshape(4, 2, 16).permute(2, 0, 1).reshape(16, 8)
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, chained.sum(0)

    out = run_pass(f, torch.randn(8, 16), mode=mode)
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_keeps_clone_when_unsafe_view_of_source_read_later():
    """`_unsafe_view` has no alias annotation yet shares storage."""
    def f(x):
        s = x * 2
        flat = torch.ops.aten._unsafe_view(s, [128])
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, flat + 1

    out = run_pass(f, torch.randn(8, 16))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_keeps_clone_when_source_is_view_of_non_donated_input():
    """Views of placeholders are inputs for donation purposes."""
    def f(x):
        first = x[:4]
        c = first.clone()
        ops.scale_(c, 3.0)
        return c

    kept = run_pass(f, torch.randn(8, 16))
    assert kept.reasons == [decisions.READ_ONLY_INPUT] and kept.check.ok
    freed = run_pass(f, torch.randn(8, 16), donated=(0,))
    assert freed.report.clones_after == 0 and freed.check.ok, freed.check.problems


def test_keeps_clone_whose_view_is_written_when_source_read_later():
    """A write through a view of the clone is a write to the clone."""
    def f(x):
        s = x * 2
        c = s.clone()
        ops.scale_(c[1:3], 3.0)
        return c, s + 1

    out = run_pass(f, torch.randn(8, 16))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


@pytest.mark.parametrize("mode", MODES)
def test_layout_changing_clones_are_kept(mode):
    """Layout requests whose layout reaches the output stay (channels_last is not a value-only
    clone at all); so does a plain clone of every other column read by a pointwise op that is
    not exact (cleanpass.strided: sin's vector loop and scalar tail differ, and on the view it
    would walk other elements in each)."""
    def f(x):
        strided = x[:, ::2].clone()
        transposed = x.t().contiguous()
        channels = x.view(1, 2, 4, 16).clone(memory_format=torch.channels_last)
        return torch.sin(strided), transposed * 2, channels - 1

    out = run_pass(f, torch.randn(8, 16), mode=mode)
    if mode == "fake":
        expected = [decisions.STRIDED_USER, decisions.STRIDED_OUTPUT, decisions.LAYOUT_DIFFERS]
    else:  # symbolic strides: the walk does not start
        expected = [decisions.LAYOUT_DIFFERS] * 3
    assert out.reasons == expected
    assert out.check.ok


def test_removes_clone_of_view_with_same_layout():
    def f(x):
        s = x * 2
        c = s[:4].clone()
        ops.scale_(c, 3.0)
        return c

    out = run_pass(f, torch.randn(8, 16))
    assert out.report.clones_after == 0 and out.check.ok, out.check.problems
