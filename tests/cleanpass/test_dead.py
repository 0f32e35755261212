"""Step 0 (cleanpass.dead): dead code that would only keep clones alive goes first; anything
that may be observed (a custom kernel, a random or data-dependent op) stays."""
from __future__ import annotations

import torch

from cleanpass import decisions
from cleanpass.dead import _is_pure_aten

from .helpers import run_pass
from .ops import ops

aten = torch.ops.aten


def _targets(gm) -> list:
    return [node.target for node in gm.graph.nodes if node.op == "call_function"]


def test_an_unused_pure_read_of_the_source_does_not_keep_the_clone():
    def f(x):
        c = x.clone()
        ops.scale_(c, 2.0)
        unused = torch.sin(x) + 1  # reads the old x, but nobody uses the result
        del unused
        return c

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert out.report.clones_after == 0 and len(out.report.removed) == 1
    assert aten.sin.default not in _targets(out.after)
    assert out.check.ok, out.check.problems


def test_a_used_pure_read_of_the_source_keeps_the_clone():
    def f(x):
        c = x.clone()
        ops.scale_(c, 2.0)
        return c, torch.sin(x) + 1

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_an_unused_custom_kernel_is_never_erased_and_its_read_counts():
    """A kernel whose result nobody reads may still act outside the graph (a collective):
    write_list did not declare its effects (`register_effects_known`), so its call stays."""
    def f(x):
        c = x.clone()
        ops.scale_(c, 2.0)
        d = x.clone()
        ops.write_list([d])  # d is never read again
        return c

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert ops.write_list.default in _targets(out.after)
    assert decisions.SOURCE_READ_AFTER_WRITE in out.reasons
    assert out.check.ok


def test_a_declared_kernel_that_writes_only_an_unread_clone_is_dead():
    """D3: scale_ declared its schema writes are its only effects; what it writes into d, a
    private clone nobody reads, is unobservable, so the call and the clone go."""
    def f(x):
        c = x.clone()
        ops.scale_(c, 2.0)
        d = x.clone()
        ops.scale_(d, 3.0)  # d is never read again
        return c

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert _targets(out.after).count(ops.scale_.default) == 1
    assert out.report.clones_after == 0 and len(out.report.removed) == 2
    assert out.check.ok


def test_a_declared_kernel_whose_clone_is_read_later_stays():
    """D3's counter-case: the written clone is read after the call (through a view)."""
    def f(x):
        d = x.clone()
        ops.scale_(d, 3.0)
        return d[0] + 1

    out = run_pass(f, torch.randn(4, 6), donated=())
    assert ops.scale_.default in _targets(out.after)
    assert out.reasons == [decisions.READ_ONLY_INPUT]
    assert out.check.ok


def test_a_declared_kernel_that_also_writes_an_input_stays():
    """D3's counter-case: fused_add_norm_ writes a dead clone and the caller's residual r."""
    def f(x, r, w):
        c = x.clone()
        ops.fused_add_norm_(c, r, w)
        return x + 1

    out = run_pass(f, torch.randn(4, 6), torch.randn(4, 6), torch.randn(6))
    assert ops.fused_add_norm_.default in _targets(out.after)
    assert out.report.clones_after == 1
    assert out.check.ok


def test_a_declared_kernel_writing_a_view_of_an_unread_clone_stays():
    """D3 asks for the clone itself: a write through a view is not proved private here."""
    def f(x):
        d = x.clone()
        ops.scale_(d[:2], 3.0)
        return x + 1

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert ops.scale_.default in _targets(out.after)
    assert out.check.ok


def test_an_unused_random_op_is_never_erased_and_its_read_counts():
    def f(x):
        c = x.clone()
        ops.scale_(c, 2.0)
        torch.bernoulli(x.sigmoid())  # consumes the generator: erasing it would shift later draws
        return c

    out = run_pass(f, torch.randn(4, 6), donated=(0,))
    assert aten.bernoulli.default in _targets(out.after)
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]


def test_a_clone_only_viewed_by_unused_views_is_dead():
    def f(x):
        s = x * 2
        c = s.clone()
        first, second = c.split(2)  # views nobody reads
        s.mul_(3)
        return s

    out = run_pass(f, torch.randn(4, 6))
    assert out.report.clones_after == 0
    assert aten.split.Tensor not in _targets(out.after)
    assert out.check.ok


def test_a_view_of_the_clone_read_after_the_source_changes_keeps_it():
    def f(x):
        s = x * 2
        c = s.clone()
        row = c[0]
        s.mul_(3)
        return row + 1, s

    out = run_pass(f, torch.randn(4, 6))
    assert out.reasons == [decisions.SOURCE_WRITTEN_WHILE_LIVE]
    assert out.check.ok


def test_only_pure_aten_ops_count_as_erasable():
    assert _is_pure_aten(aten.sin.default) and _is_pure_aten(aten.split.Tensor)
    assert not _is_pure_aten(aten.add_.Tensor)  # writes its argument
    assert not _is_pure_aten(aten.bernoulli.default)  # random
    assert not _is_pure_aten(aten.nonzero.default)  # data-dependent size
    assert not _is_pure_aten(ops.scaled.default)  # not aten: may act outside the graph
