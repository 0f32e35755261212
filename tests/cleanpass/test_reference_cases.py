"""The reference pass's own unit cases (docs/reference-pass.md): both policies agree on every one."""
from __future__ import annotations

import pytest
import torch

from .helpers import run_pass
from .ops import ops

POLICIES = ["sound", "vllm"]


def _x() -> torch.Tensor:
    return torch.randn(8, 16)


@pytest.mark.parametrize("policy", POLICIES)
def test_removes_read_only_clone_of_input(policy):
    def f(x):
        return x.clone() + 1

    out = run_pass(f, _x(), policy=policy)
    assert (out.report.clones_before, out.report.clones_after) == (1, 0)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_keeps_mutated_clone_when_source_is_returned_too(policy):
    def f(x):
        s = x * 2
        c = s.clone()
        ops.scale_(c, 3.0)
        return c, s

    out = run_pass(f, _x(), policy=policy)
    assert (out.report.clones_before, out.report.clones_after) == (1, 1)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_removes_mutated_clone_when_source_is_dead(policy):
    def f(x):
        s = x * 2
        c = s.clone()
        ops.scale_(c, 3.0)
        return c

    out = run_pass(f, _x(), policy=policy)
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_removes_both_clones_of_a_chain(policy):
    def f(x):
        return x.clone().clone() * 2

    out = run_pass(f, _x(), policy=policy)
    assert (out.report.clones_before, out.report.clones_after) == (2, 0)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_removes_two_independent_read_only_clones(policy):
    def f(x):
        return x.clone() + 1, x.clone() * 2

    out = run_pass(f, _x(), policy=policy)
    assert (out.report.clones_before, out.report.clones_after) == (2, 0)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_removes_mutated_clone_of_donated_input(policy):
    def f(x):
        c = x.clone()
        ops.scale_(c, 3.0)
        return c

    out = run_pass(f, _x(), donated=(0,), policy=policy)
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_keeps_mutated_clone_of_non_donated_input_and_input_untouched(policy):
    def f(x):
        c = x.clone()
        ops.scale_(c, 3.0)
        return c

    x = _x()
    original = x.clone()
    out = run_pass(f, x, policy=policy)
    assert out.report.clones_after == 1
    out.after(x)
    assert torch.equal(x, original)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_two_inputs_one_donated_leaves_one_clone(policy):
    def f(x, y):
        cx, cy = x.clone(), y.clone()
        ops.scale_(cx, 3.0)
        ops.scale_(cy, 5.0)
        return cx, cy

    out = run_pass(f, _x(), _x(), donated=(1,), policy=policy)
    assert (out.report.clones_before, out.report.clones_after) == (2, 1)
    assert out.report.kept[0].source == "x_1"
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("tokens", [1, 8, 17, 32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fused_add_norm_shapes_and_dtypes(tokens, dtype):
    """The lowering's clone pattern for fused add + RMSNorm, on the reference's odd shapes."""
    def f(x, residual, weight):
        cx, cr = x.clone(), residual.clone()
        ops.fused_add_norm_(cx, cr, weight)
        return cx, cr

    args = [torch.randn(tokens, 64, dtype=dtype) for _ in range(2)] + [torch.randn(64, dtype=dtype)]
    kept = run_pass(f, *args)
    assert kept.report.clones_after == 2 and kept.check.ok
    freed = run_pass(f, *args, donated=(0, 1))
    assert freed.report.clones_after == 0 and freed.check.ok, freed.check.problems
