"""Validation logic on plain tensors: tolerance table, NaN, bit-exact A/B, untouched inputs."""
from __future__ import annotations

import math

import pytest
import torch

from harness.run import validate as v


def test_rounding_to_the_dtype_is_within_tolerance():
    ref = torch.randn(64, 128, dtype=torch.float64)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        cmp = v.compare_to_reference([ref.to(dtype)], [ref], dtype)
        assert cmp.verdict is v.Verdict.WITHIN_TOLERANCE, (dtype, cmp.detail)
        assert 0 <= cmp.max_abs_err < 0.05


def test_nan_never_passes_even_where_the_reference_is_nan():
    ref = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    cmp = v.compare_to_reference([ref.float()], [ref], torch.float32)
    assert cmp.verdict is v.Verdict.FAIL and "NaN" in cmp.detail and math.isnan(cmp.max_abs_err)


def test_a_wrong_element_fails_and_is_located():
    ref = torch.zeros(4, 8, dtype=torch.float64)
    out = ref.float().clone()
    out[2, 5] = 0.5
    cmp = v.compare_to_reference([out], [ref], torch.float32)
    assert cmp.verdict is v.Verdict.FAIL and "(2, 5)" in cmp.detail and cmp.max_abs_err == pytest.approx(0.5)


def test_shape_or_count_mismatch_fails():
    ref = torch.zeros(4, dtype=torch.float64)
    assert v.compare_to_reference([torch.zeros(5)], [ref], torch.float32).verdict is v.Verdict.FAIL
    assert v.compare_to_reference([], [ref], torch.float32).verdict is v.Verdict.FAIL


def test_bitwise_diff_reports_where_and_how_much():
    a = torch.randn(3, 4)
    assert v.bitwise_diff([a], [a.clone()]) == ""
    b = a.clone()
    b[1, 2] += 0.25
    msg = v.bitwise_diff([a], [b])
    assert "1/12 elements differ" in msg and "(1, 2)" in msg and "0.25" in msg


def test_bitwise_sees_signed_zero_and_treats_equal_nans_as_bits():
    assert not v.bit_equal(torch.tensor([0.0]), torch.tensor([-0.0]))
    n = torch.tensor([float("nan")])
    assert v.bit_equal(n, n.clone())
    assert "signed zero" in v.bitwise_diff([torch.tensor([0.0])], [torch.tensor([-0.0])])


def test_changed_inputs_ignores_donated_positions():
    before = (torch.ones(3), torch.ones(3), 5)
    after = (torch.zeros(3), torch.zeros(3), 5)
    assert v.changed_inputs(before, after, donated=(0,)) == [1]
    assert v.changed_inputs(before, before, donated=()) == []


def test_verdict_table():
    ok = v.Comparison(v.Verdict.WITHIN_TOLERANCE, 0.0)
    bad = v.Comparison(v.Verdict.FAIL, 1.0)
    assert v.verdict_for(ok, True) is v.Verdict.IDENTICAL
    assert v.verdict_for(ok, None) is v.Verdict.WITHIN_TOLERANCE
    assert v.verdict_for(ok, False) is v.Verdict.FAIL
    assert v.verdict_for(bad, True) is v.Verdict.FAIL


def test_reference_inputs_are_float64_copies():
    x, i = torch.randn(2, dtype=torch.bfloat16), torch.arange(3)
    rx, ri = v.to_reference_inputs((x, i))
    assert rx.dtype == torch.float64 and ri is i and rx.data_ptr() != x.data_ptr()


def test_tolerance_scale_widens_both_bounds_and_still_fails_a_wrong_answer():
    """A deep bf16 chain's honest rounding passes with its workload's scale; garbage never does."""
    ref = torch.linspace(-4, 4, 101, dtype=torch.float64)
    rounded_twice = (ref + 0.03).to(torch.bfloat16)
    assert v.compare_to_reference([rounded_twice], [ref], torch.bfloat16).verdict is v.Verdict.FAIL
    widened = v.compare_to_reference([rounded_twice], [ref], torch.bfloat16, scale=4.0)
    assert widened.verdict is v.Verdict.WITHIN_TOLERANCE
    wrong = v.compare_to_reference([(ref + 1.0).to(torch.bfloat16)], [ref], torch.bfloat16, scale=8.0)
    assert wrong.verdict is v.Verdict.FAIL
