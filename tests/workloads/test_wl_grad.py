"""Grad mode: functional IR ops are differentiable; donation under autograd is refused clearly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from workloads import donation, pipeline
from workloads.ir import OPS
from workloads.ir.fused_add_rms_norm import fused_add_rms_norm_native
from workloads.ir.rms_norm import rms_norm_native
from workloads.ir.samples import sample_args

ir = torch.ops.cleanpass_ir
H = 32


@pytest.mark.parametrize("name", sorted(OPS))
def test_functional_overload_passes_gradcheck(name: str) -> None:
    args = sample_args(name, 3, 128, torch.float64)
    args = tuple(a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.dtype == torch.float64 else a
                 for a in args)
    assert torch.autograd.gradcheck(lambda *a: OPS[name].functional(*a), args, fast_mode=True)


class _Norms(nn.Module):
    """linear -> fused add + RMSNorm -> RMSNorm, through the IR ops or their native math."""

    def __init__(self, use_ir: bool, donate: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(H, H)
        self.w = nn.Parameter(torch.rand(H) + 0.5)
        self.use_ir, self.donate = use_ir, donate

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.use_ir:
            h, r = fused_add_rms_norm_native(self.lin(x), r, self.w, 1e-6)
            return rms_norm_native(h, self.w, 1e-6), r
        fused = ir.fused_add_rms_norm.maybe_inplace if self.donate else ir.fused_add_rms_norm.default
        h, r = fused(self.lin(x), r, self.w, 1e-6)
        return ir.rms_norm.default(h, self.w, 1e-6), r


@pytest.mark.slow
def test_compiled_module_with_trainable_parameters_gives_native_gradients() -> None:
    torch.manual_seed(0)
    ours, native = _Norms(use_ir=True), _Norms(use_ir=False)
    native.load_state_dict(ours.state_dict())
    compiled = pipeline.compile_fn(ours, policy="sound")
    x, r = torch.randn(8, H), torch.randn(8, H)
    got, want = compiled(x, r), native(x, r)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    for outs in (got, want):
        (outs[0].sum() + outs[1].pow(2).sum()).backward()
    for (name, p), q in zip(ours.named_parameters(), native.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert compiled.reports and compiled.lowering_reports[0].clones_emitted == 3


@pytest.mark.slow
def test_maybe_inplace_under_grad_fails_at_trace_time_saying_use_inference_mode() -> None:
    compiled = pipeline.compile_fn(_Norms(use_ir=True, donate=True), policy="sound")
    with pytest.raises(donation.DonationError, match=r"test_wl_grad.py:\d+ .*torch.inference_mode\(\)"):
        compiled(torch.randn(8, H), torch.randn(8, H))


@pytest.mark.slow
def test_maybe_inplace_under_inference_mode_donates() -> None:
    compiled = pipeline.compile_fn(_Norms(use_ir=True, donate=True), policy="sound")
    with torch.inference_mode():
        compiled(torch.randn(8, H), torch.randn(8, H))
    report = compiled.reports[-1]
    assert compiled.donated[-1] and report.clones_before == 3
    assert {d.source for d in report.removed} >= {"addmm", "arg5_1"}  # lin(x) and the donated r
