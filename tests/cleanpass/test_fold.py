"""Folding kept clones into out-of-place kernels: one test per condition F1-F5 of
`cleanpass.fold`, each a program where folding would be wrong, plus the cases that fold."""
from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import pytest
import torch

import cleanpass
from cleanpass import decisions, verify

from .helpers import count_clones, trace
from .helpers import run_pass as _run_pass
from .ops import ops

MODES = ["fake", "symbolic", "oblivious"]


@contextlib.contextmanager
def _registered(inplace, out_of_place, outputs, **kwargs) -> Iterator[cleanpass.OutOfPlaceForm]:
    """Register a form for the duration of a test, then restore the one of tests/cleanpass/ops.py."""
    saved = cleanpass.out_of_place_form(inplace)
    try:
        yield cleanpass.register_out_of_place(inplace, out_of_place, outputs, **kwargs)
    finally:
        cleanpass.register_out_of_place(saved.inplace, saved.out_of_place, dict(saved.outputs),
                                        dict(saved.overwrites), saved.any_input_layout)


def run_pass(*args, **kwargs):
    return _run_pass(*args, fold=True, **kwargs)


def _scaled_copy(x):
    """The lowering's shape: a private copy handed to an in-place kernel."""
    c = x.clone()
    ops.scale_(c, 3.0)
    return c


def _head_scaled_copy(n):
    def program(x):
        c = x.clone()
        ops.scale_head_(c, n)
        return c
    return program


def _targets(gm: torch.fx.GraphModule) -> list:
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("mode", MODES)
def test_folds_clone_of_kept_input(mode):
    """x is not donated: elimination keeps the clone, folding turns it into scale_out."""
    out = run_pass(_scaled_copy, torch.randn(4, 8), mode=mode)
    assert out.check.ok, out.check.problems
    assert [d.reason for d in out.report.folded] == [decisions.FOLDED]
    assert out.report.kept == [] and out.report.clones_after == 0
    assert ops.scale_out.default in _targets(out.after)
    assert ops.scale_.default not in _targets(out.after)
    if mode == "fake":
        assert out.report.folded[0].bytes == 4 * 8 * 4


def test_mixed_call_folds_only_the_kept_argument():
    """x donated (its clone removed, written in place), residual kept (folded: fresh buffer)."""
    def f(x, r, w):
        a, b = x.clone(), r.clone()
        ops.fused_add_norm_(a, b, w)
        return a, b

    out = run_pass(f, torch.randn(4, 8), torch.randn(4, 8), torch.randn(8), donated=(0,))
    assert out.check.ok, out.check.problems
    assert len(out.report.removed) == 1 and len(out.report.folded) == 1
    call = next(n for n in out.after.graph.nodes if n.target is ops.fused_add_norm_out.default)
    x, r = [n for n in out.after.graph.nodes if n.op == "placeholder"][:2]
    assert call.args[0] is x and call.args[3] is x  # x read and written in place
    assert call.args[1] is r and call.args[4] is not r  # residual read, written to a fresh buffer


def test_fold_switch_and_vllm_policy_never_fold():
    gm = trace(_scaled_copy, torch.randn(4, 8))
    for kwargs in ({"fold": False}, {"policy": "vllm"}):
        after = copy.deepcopy(gm)
        report = cleanpass.eliminate_clones(after, **kwargs)
        assert report.folded == [] and count_clones(after) == 1
    assert (cleanpass.CloneEliminationPass(fold=False).uuid()
            != cleanpass.CloneEliminationPass(fold=True).uuid())


def test_second_run_changes_nothing():
    out = run_pass(_scaled_copy, torch.randn(4, 8))
    again = cleanpass.eliminate_clones(out.after)
    assert again.clones_before == 0 and again.folded == []


def test_f1_keeps_clone_when_kernel_writes_part_of_it():
    """scale_head_ with n < width writes only the head: a fresh buffer's tail would be poison."""
    out = run_pass(_head_scaled_copy(3), torch.randn(4, 8))
    assert out.report.folded == [] and out.report.clones_after == 1
    assert out.check.ok, out.check.problems


def test_f1_folds_when_the_predicate_says_whole():
    out = run_pass(_head_scaled_copy(8), torch.randn(4, 8))
    assert len(out.report.folded) == 1
    assert out.check.ok, out.check.problems


def test_f1_poisoned_check_catches_a_lying_registration():
    """Registering the partial kernel as whole would fold; the poisoned differential check
    must then report the unwritten tail."""
    with _registered(ops.scale_head_.default, ops.scale_head_out.default, {"x": "x_out"},
                     any_input_layout=True):
        out = run_pass(_head_scaled_copy(3), torch.randn(4, 8))
    assert len(out.report.folded) == 1
    assert not out.check.ok


def test_f2_keeps_clone_read_before_the_kernel():
    def f(x):
        c = x.clone()
        y = c + 1
        ops.scale_(c, 3.0)
        return c, y

    out = run_pass(f, torch.randn(4, 8))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f2_keeps_clone_whose_view_is_read_before_the_kernel():
    def f(x):
        c = x.clone()
        y = c[0] * 2
        ops.scale_(c, 3.0)
        return c, y

    out = run_pass(f, torch.randn(4, 8))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f2_keeps_clone_passed_twice():
    """The kernel gets c as x and as residual: folding x alone would write a fresh buffer for x
    while residual still names c."""
    def f(x, w):
        c = x.clone()
        ops.fused_add_norm_(c, c, w)
        return c

    out = run_pass(f, torch.randn(4, 8), torch.randn(8))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f3_keeps_clone_whose_source_changes_before_the_kernel():
    def f(x):
        s = x * 1
        c = s.clone()
        ops.scale_(s, 2.0)
        ops.scale_(c, 3.0)
        return c, s

    out = run_pass(f, torch.randn(4, 8))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f3_keeps_clone_when_the_kernel_writes_its_source():
    """fused_add_norm_(clone(r), r): the out form would read r while writing r in place."""
    def f(r, w):
        c = r.clone()
        ops.fused_add_norm_(c, r, w)
        return c, r

    out = run_pass(f, torch.randn(4, 8), torch.randn(8), donated=(0,))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f4_folds_strided_source_into_a_fresh_buffer_of_the_clone_layout():
    """s is a transposed view: the fresh buffer gets the clone's (dense) layout, the form
    reads s through its strides."""
    def f(x):
        c = x.t().clone(memory_format=torch.contiguous_format)
        ops.scale_(c, 3.0)
        return c

    out = run_pass(f, torch.randn(4, 8))
    assert len(out.report.folded) == 1 and out.check.ok, out.check.problems
    result = out.after(torch.randn(4, 8))[0]
    assert result.is_contiguous()


def test_f4_keeps_clone_when_form_needs_the_clone_layout():
    def f(x):
        c = x.t().clone(memory_format=torch.contiguous_format)
        ops.scale_(c, 3.0)
        return c

    with _registered(ops.scale_.default, ops.scale_out.default, {"x": "x_out"}, any_input_layout=False):
        out = run_pass(f, torch.randn(4, 8))
    assert out.report.folded == [] and out.check.ok, out.check.problems


def test_f5_keeps_clone_without_meta():
    gm = trace(_scaled_copy, torch.randn(4, 8))
    for node in gm.graph.nodes:
        if node.target is torch.ops.aten.clone.default:
            node.meta.pop("val")
    after = copy.deepcopy(gm)
    report = cleanpass.eliminate_clones(after)
    assert report.folded == [] and count_clones(after) == 1
    assert verify.check(gm, after).ok


def test_registration_checks_the_signature():
    with pytest.raises(ValueError):
        cleanpass.register_out_of_place(ops.scale_.default, ops.fused_add_norm_out.default, {"x": "x_out"})
    with pytest.raises(ValueError):
        cleanpass.register_out_of_place(ops.scale_.default, ops.scale_out.default, {"y": "x_out"})


@pytest.mark.parametrize("module,broken_name", [("eliminate", "GraphFacts"), ("fold", "foldable")])
def test_analysis_failure_folds_nothing(monkeypatch, module, broken_name):
    """Bad input makes folding keep the clone, never raise."""
    import importlib

    def broken(*args, **kwargs):
        raise RuntimeError("simulated folding bug")

    monkeypatch.setattr(importlib.import_module(f"cleanpass.{module}"), broken_name, broken)
    out = run_pass(_scaled_copy, torch.randn(4, 8))
    assert out.report.folded == [] and out.report.clones_after == 1
    assert out.check.ok, out.check.problems
