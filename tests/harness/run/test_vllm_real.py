"""The adapter around vLLM's own pass: a reason when vllm is missing, the real pass when not.

The project's environment has no vllm, so there the first test checks the reason; in the peer
environment (`make peer`) the same test runs the real pass on a graph whose answer vLLM 0.33's
rule fixes (a returned clone of an input stays, a read-only clone of an intermediate goes).
"""
from __future__ import annotations

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from harness.run import vllm_real


def _graph():
    def f(x):
        return x.clone(), x.relu().clone() + 1

    return make_fx(f, tracing_mode="fake")(torch.randn(4, 3)).graph


def test_real_pass_runs_or_says_why_not():
    reason = vllm_real.unavailable()
    if vllm_real.version() is None:
        assert reason is not None and "not installed" in reason
        try:
            vllm_real.RealCloneElimination()
        except RuntimeError as error:
            assert str(error) == reason
        else:
            raise AssertionError("the adapter must refuse without vllm")
        return
    assert reason is None, reason
    report = vllm_real.RealCloneElimination()(_graph(), donated=())
    assert (report.clones_before, report.clones_after) == (2, 1)

