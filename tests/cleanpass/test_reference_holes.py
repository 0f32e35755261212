"""Each documented hole of the reference pass (docs/reference-pass.md): the sound policy keeps the
clone, the differential checker proves the reference's removal wrong, and the reference (as
documented) makes it."""
from __future__ import annotations

import pytest
import torch

from cleanpass import decisions

from .helpers import run_pass, trace
from .ops import ops


def _assert_hole(fn, *inputs, reason, donated=()):
    sound = run_pass(fn, *inputs, donated=donated)
    assert sound.report.clones_after == sound.report.clones_before >= 1
    assert reason in sound.reasons
    assert sound.check.ok, sound.check.problems
    reference = run_pass(fn, *inputs, donated=donated, policy="vllm")
    assert reference.report.removed, "the reference pass should fall into this hole"
    assert not reference.check.ok, "the checker should prove the reference's removal wrong"


def test_hole_view_of_source_read_after_write():
    """Hole: views of the source are never looked at (a slice read after the write)."""
    def f(x):
        s = x * 2
        head = s[:2]
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, head + 1

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_READ_AFTER_WRITE)


def test_hole_base_of_source_read_after_write():
    """Hole: the base the source is a view of is never looked at."""
    def f(x):
        base = x * 2
        s = base[:4]
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, base + 1

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_READ_AFTER_WRITE)


def test_hole_split_half_of_fused_qkv_read_after_write():
    """Hole: qkv -> q, k, v; an in-place kernel on a clone of q, the base qkv read afterwards."""
    def f(x):
        qkv = x * 2
        q, _k, _v = qkv.split([4, 2, 2], dim=0)
        c = q.clone()
        ops.scale_(c, 3.0)
        return c, qkv.sum(0)

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_READ_AFTER_WRITE)


def test_hole_read_only_clone_of_value_written_later():
    """Hole: a clone nobody writes is removed even though its source is written later."""
    def f(x):
        s = x * 2
        c = s.clone()
        ops.scale_(s, 3.0)
        return c + s

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_WRITTEN_WHILE_LIVE)


def test_hole_read_only_clone_of_input_overwritten_by_copy_epilogue():
    """Hole: the `copy_` that writes a mutated input back overwrites the clone's source."""
    def f(x):
        c = x.clone()
        x.copy_(x * 3)
        return c + 1

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_WRITTEN_WHILE_LIVE)


def test_hole_write_through_keyword_argument_is_seen():
    """Hole: writes through keyword arguments are not seen by the reference."""
    def f(x):
        s = x * 2
        c = s.clone()
        torch.ops.cleanpass_test.write_kw(x, out=c)
        return c, s + 1

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_READ_AFTER_WRITE)


def test_hole_write_through_tensor_list_is_seen():
    """Hole: writes through `Tensor(a!)[]` arguments are not seen by the reference."""
    def f(x):
        s = x * 2
        c = s.clone()
        ops.write_list([c])
        return c, s + 1

    _assert_hole(f, torch.randn(8, 16), reason=decisions.SOURCE_READ_AFTER_WRITE)


def _written_twice(s):
    c = s.clone()
    ops.scale_(c, 3.0)
    ops.scale_(c, 5.0)
    return c


def test_several_writes_handled_where_reference_asserts():
    """Hole: several writes to one clone trip the reference's assertion."""
    def dead_source(x):
        return _written_twice(x * 2)

    def live_source(x):
        s = x * 2
        return _written_twice(s), s + 1

    removed = run_pass(dead_source, torch.randn(8, 16))
    assert removed.report.clones_after == 0 and removed.check.ok, removed.check.problems
    kept = run_pass(live_source, torch.randn(8, 16))
    assert kept.reasons == [decisions.SOURCE_READ_AFTER_WRITE] and kept.check.ok
    with pytest.raises(AssertionError, match="2 writes"):
        run_pass(dead_source, torch.randn(8, 16), policy="vllm")


def test_layout_changing_clone_is_kept_by_both():
    """Early reference versions removed `.contiguous()` of a strided view; both keep it now (sound:
    the in-place kernel is not declared to take the transposed layout)."""
    def f(x):
        c = x.t().contiguous()
        ops.scale_(c, 2.0)
        return c

    for policy in ("sound", "vllm"):
        out = run_pass(f, torch.randn(8, 16), donated=(0,), policy=policy)
        assert out.report.clones_after == 1 and out.check.ok
    assert run_pass(f, torch.randn(8, 16), donated=(0,)).reasons == [decisions.STRIDED_USER]


def test_traced_graph_has_the_pattern_the_holes_need():
    """Guard for the tests above: the clone and the in-place call survive tracing as written."""
    def f(x):
        c = x.clone()
        ops.scale_(c, 3.0)
        return c

    targets = [n.target for n in trace(f, torch.randn(2, 2)).graph.nodes if n.op == "call_function"]
    assert torch.ops.aten.clone.default in targets
    assert torch.ops.cleanpass_test.scale_.default in targets
