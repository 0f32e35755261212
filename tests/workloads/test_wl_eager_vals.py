"""Inductor's stride contract (`meta["eager_input_vals"]`) after the pass edits a graph.

vLLM's lowering traces providers with `make_fx`, so every kernel it emits carries the record;
ours does not. These tests stamp the record on our lowered kernels the way vLLM's lowering
leaves it, then run cleanpass: folding (new argument list) and strided-view removal (new
strides) must compile, match `lowered` bit for bit and add no copy. Without
`cleanpass.eager_vals.refresh` the folded graph fails to lower and the rewired view is copied.
"""
from __future__ import annotations

import pytest
import torch
from torch import fx
from torch.fx.node import map_aggregate

import cleanpass
from cleanpass import eager_vals, eliminate
from harness.run.compile import capture_code
from workloads import pipeline

pytestmark = pytest.mark.slow
IR = torch.ops.cleanpass_ir
KEY = eager_vals.KEY


def _stamp(graph: fx.Graph) -> None:
    """Record each kernel's argument values, as `make_fx` does for vLLM's lowered kernels."""
    for node in graph.nodes:
        if node.op == "call_function" and str(node.target).startswith("cleanpass_kernels."):
            node.meta[KEY] = map_aggregate((node.args, node.kwargs),
                                           lambda a: a.meta["val"] if isinstance(a, fx.Node) else a)


def _compile(fn, policy, fold=True) -> pipeline.Compiled:
    compiled = pipeline.compile_fn(fn, policy=policy, dynamic=False, fold=fold)
    compiled.post.stages.insert(1, ("stamp eager_input_vals", _stamp))
    return compiled


def _fused_kept(x, residual, weight):
    return IR.fused_add_rms_norm(x, residual, weight, 1e-6)


def _norm_on_column_view(x, w_qkv, weight):
    q = (x @ w_qkv)[:, :x.shape[-1]]  # a strided view of a buffer nothing else reads
    return IR.rms_norm(q, weight, 1e-6) * 2.0


def _inputs_fused():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, 64, generator=g), torch.randn(16, 64, generator=g), torch.randn(64, generator=g)]


def _inputs_view():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(16, 64, generator=g), torch.randn(64, 192, generator=g) / 8, torch.randn(64, generator=g)]


def _run(fn, inputs, policy, fold=True):
    compiled = _compile(fn, policy, fold)
    with torch.no_grad(), capture_code() as generated:
        out = compiled(*[t.clone() for t in inputs])
    return out, generated, compiled


@pytest.mark.parametrize("fn, inputs, folded, removed", [
    (_fused_kept, _inputs_fused, 2, 0),          # folded: out-of-place form, more arguments
    (_norm_on_column_view, _inputs_view, 0, 1),  # removed: the kernel takes the strided view
])
def test_rewired_kernels_compile_exactly_with_no_copy(fn, inputs, folded, removed):
    base, base_code, _ = _run(fn, inputs(), None)
    out, generated, compiled = _run(fn, inputs(), "sound")
    out, base = (out if isinstance(out, tuple) else (out,)), (base if isinstance(base, tuple) else (base,))
    (report,) = compiled.reports
    assert (len(report.folded), len(report.removed), report.clones_after) == (folded, removed, 0)
    assert all(torch.equal(a, b) for a, b in zip(out, base))
    assert base_code.copies() >= 1 and generated.copies() == 0
    assert generated.view_errors() == ()


def test_without_the_refresh_the_stale_record_breaks_the_compile(monkeypatch):
    monkeypatch.setattr(eliminate.eager_vals, "refresh", lambda graph, before: 0)
    with pytest.raises(Exception, match="LoweringException|AssertionError"):
        _run(_fused_kept, _inputs_fused(), "sound")


def test_without_the_refresh_the_rewired_view_is_copied_in_and_back(monkeypatch):
    monkeypatch.setattr(eliminate.eager_vals, "refresh", lambda graph, before: 0)
    _, generated, _ = _run(_norm_on_column_view, _inputs_view(), "sound")
    assert generated.copies() >= 1


def test_records_of_untouched_calls_stay_as_written():
    graph = fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = torch.empty(4, 8)
    y = graph.call_function(torch.ops.aten.relu.default, (x,))
    y.meta["val"] = torch.empty(4, 8)
    record = ((torch.empty(4, 8),), {})
    y.meta[KEY] = record
    graph.output(y)
    before = eager_vals.snapshot(graph)
    assert eager_vals.refresh(graph, before) == 0 and y.meta[KEY] is record
    y.args = (y.args[0],)  # same arguments: still untouched
    assert eager_vals.refresh(graph, before) == 0
    x.meta["val"] = torch.empty(8, 4).t()  # the pass gave the argument a new value
    assert eager_vals.refresh(graph, before) == 1
    assert y.meta[KEY][0][0] is x.meta["val"]


def test_a_record_that_cannot_be_rebuilt_is_dropped():
    graph = fx.Graph()
    x = graph.placeholder("x")
    z = graph.placeholder("z")  # no value recorded
    x.meta["val"] = torch.empty(4)
    y = graph.call_function(torch.ops.aten.add.Tensor, (x, x))
    y.meta[KEY] = ((torch.empty(4), torch.empty(4)), {})
    graph.output(y)
    before = eager_vals.snapshot(graph)
    y.args = (x, z)
    assert eager_vals.refresh(graph, before) == 1 and KEY not in y.meta


def test_folding_keeps_the_record_true_for_its_new_call():
    """The pass itself, on a bare graph: the folded call's record names its own arguments."""
    compiled = _compile(_fused_kept, "sound")
    graphs: list[fx.Graph] = []
    compiled.post.stages.append(("keep", graphs.append))
    with torch.no_grad():
        compiled(*_inputs_fused())
    (graph,) = graphs
    calls = [n for n in graph.nodes if KEY in n.meta]
    assert calls and all(len(n.meta[KEY][0]) == len(n.args) for n in calls)
    assert any(cleanpass.out_of_place_form(n.target) is None and "out" in str(n.target) for n in calls)
