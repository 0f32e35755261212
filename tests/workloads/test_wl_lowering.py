"""The post-grad lowering: clone + in-place kernel per IR op, compiled results equal eager,
clone counts per workload, dynamic token counts."""
from __future__ import annotations

import logging

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from workloads import catalog, compat, lowering, selfcheck

ir = torch.ops.cleanpass_ir
WORKLOADS = sorted(catalog.all_workloads())


def _two_norms(x, r, w):  # noqa: ANN001, ANN202
    h, r2 = ir.fused_add_rms_norm(x, r, w, 1e-6)
    return ir.rms_norm(h, w, 1e-6), r2


def _inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 64, generator=g), torch.randn(5, 64, generator=g), torch.randn(64, generator=g)


def test_lowering_emits_plain_clones_then_the_inplace_kernel() -> None:
    gm = make_fx(_two_norms, tracing_mode="fake")(*_inputs())
    rep = lowering.lower_ir_ops(gm.graph)
    gm.recompile()
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert rep.clones_emitted == 3 and rep.clones_after == 3 and rep.unlowered == []
    assert targets.count(torch.ops.aten.clone.default) == 3
    k = torch.ops.cleanpass_kernels
    assert targets.index(k.fused_add_rms_norm_torch_.default) > targets.index(torch.ops.aten.clone.default)
    assert k.rms_norm_torch_.default in targets
    assert not any(getattr(t, "namespace", "") == "cleanpass_ir" for t in targets)


def test_every_new_node_has_meta_val() -> None:
    gm = make_fx(_two_norms, tracing_mode="fake")(*_inputs())
    lowering.lower_ir_ops(gm.graph)
    for n in gm.graph.nodes:
        if n.op == "call_function":
            assert "val" in n.meta, n.name
            if n.target is torch.ops.aten.clone.default:
                assert isinstance(n.meta["val"], torch.Tensor)


def test_lowered_graph_equals_eager() -> None:
    gm = make_fx(_two_norms, tracing_mode="fake")(*_inputs())
    lowering.lower_ir_ops(gm.graph)
    gm.recompile()
    ins = _inputs()
    for a, b in zip(gm(*[t.clone() for t in ins]), _two_norms(*ins)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_warns_when_an_ir_op_is_left_unlowered(caplog: pytest.LogCaptureFixture) -> None:
    gm = make_fx(_two_norms, tracing_mode="fake")(*_inputs())
    with caplog.at_level(logging.WARNING, logger="workloads.lowering"):
        rep = lowering.lower_ir_ops(gm.graph, providers=())
    assert len(rep.unlowered) == 2
    assert "left unlowered" in caplog.text


def test_passes_ride_in_per_compile_options_post_grad_post_pass() -> None:
    """Lowering must run in the post pass: remove_noop_ops (before it) deletes clones."""
    opts = compat.inductor_options("pre", "post")
    assert opts["post_grad_custom_post_pass"] == "post"
    assert opts["pre_grad_custom_pass"] == "pre"
    assert "post_grad_custom_pre_pass" not in opts
    assert opts["fx_graph_cache"] is False


@pytest.mark.slow
@pytest.mark.parametrize("name", WORKLOADS)
def test_compiled_lowered_equals_eager_with_expected_clones(name: str, compiled_run) -> None:  # noqa: ANN001
    run = compiled_run(name, "lowered")
    assert run.problems == []
    assert run.clones == catalog.get(name).expected_clones_for(run.shape)["lowered"]
    assert run.compiled.lowering_reports[-1].unlowered == []


@pytest.mark.slow
@pytest.mark.parametrize("name", WORKLOADS)
def test_dynamic_token_dim_no_recompile(name: str, compiled_run) -> None:  # noqa: ANN001
    """A second token count runs through the same compiled graph and stays correct."""
    run = compiled_run(name, "lowered")
    wl = catalog.get(name)
    other = wl.build(wl.shapes("test")[1], torch.float32, "cpu")
    dim = other.dynamic_dim
    assert other.inputs[0].shape[dim] != run.built.inputs[0].shape[dim]
    graphs = len(run.compiled.reports)
    out = selfcheck.as_tuple(run.compiled(*other.fresh_inputs()))
    assert len(run.compiled.reports) == graphs, "recompiled for a new token count"
    for o, r in zip(out, selfcheck.as_tuple(run.built.reference(*other.fresh_inputs()))):
        torch.testing.assert_close(o.double(), r, atol=1e-4, rtol=1e-4)
