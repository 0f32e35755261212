"""Graphs the pass does not fully understand: it keeps clones and says why, never crashes."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.fx import Graph

import cleanpass
from cleanpass import decisions, eliminate
from cleanpass.alias import AliasClasses
from cleanpass.mutation import node_effect

from .helpers import count_clones, run_pass, trace
from .ops import ops


def _strip_meta(gm):
    for node in gm.graph.nodes:
        node.meta.pop("val", None)
        node.meta.pop("tensor_meta", None)
    return gm


def _lowered_style(x):
    s = x * 2
    first, _ = s.split([4, 4], dim=0)
    c = first.clone()
    ops.scale_(c, 3.0)
    return c, s + 1, (x * 3).clone() + 1


def test_without_meta_keeps_every_clone_and_stays_correct():
    gm = _strip_meta(trace(_lowered_style, torch.randn(8, 16)))
    after = copy.deepcopy(gm)
    report = cleanpass.eliminate_clones(after)
    assert report.clones_after == 2
    assert {d.reason for d in report.kept} == {decisions.LAYOUT_UNKNOWN}
    x = torch.randn(8, 16)
    result = cleanpass.verify.check(gm, after, inputs=[x], trials=1)
    assert result.ok, result.problems


def test_alias_analysis_without_meta_still_sees_views_and_unsafe_view():
    def f(x):
        s = x * 2
        a, b = s.split([4, 4], dim=0)
        flat = torch.ops.aten._unsafe_view(s, [128])
        return a + 1, flat * 2, (x * 3) + 1

    gm = _strip_meta(trace(f, torch.randn(8, 16)))
    nodes = {n.name: n for n in gm.graph.nodes}
    classes = AliasClasses(gm.graph.nodes)
    assert classes.same(nodes["mul"], nodes["getitem"])
    assert classes.same(nodes["mul"], nodes["_unsafe_view"])
    assert not classes.same(nodes["mul"], nodes["mul_1"])


def _poke(t):
    """A plain Python callable: the pass cannot know what it does to its argument."""
    t.add_(7.0)
    return t.sum()


def test_unknown_callable_is_treated_as_reading_and_writing_its_tensors():
    def f(x):
        s = x * 2
        c = s.clone()
        return c, s + 1

    gm = trace(f, torch.randn(8, 16))
    clone = next(n for n in gm.graph.nodes if n.target is torch.ops.aten.clone.default)
    with gm.graph.inserting_after(clone):
        poked = gm.graph.call_function(_poke, (clone,))
    output = next(n for n in gm.graph.nodes if n.op == "output")
    output.args = (tuple(output.args[0]) + (poked,),)
    gm.recompile()
    out = run_pass(gm, donated=())
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok, out.check.problems
    assert node_effect(poked).opaque


def test_functional_higher_order_ops_only_read_and_others_are_opaque():
    from torch._higher_order_ops.auto_functionalize import auto_functionalized

    graph = Graph()
    x = graph.placeholder("x")
    functional = graph.call_function(auto_functionalized, (ops.scale_.default,), {"x": x, "factor": 2.0})
    cond = graph.call_function(torch.ops.higher_order.cond, (x, x, x, (x,)))
    assert node_effect(functional).reads == (x,) and not node_effect(functional).writes
    assert node_effect(cond).opaque and x in node_effect(cond).writes


def test_schema_effects_cover_keyword_list_and_out_arguments():
    graph = Graph()
    a, b, c = (graph.placeholder(name) for name in "abc")
    keyword = graph.call_function(torch.ops.cleanpass_test.write_kw.default, (a,), {"out": b})
    listed = graph.call_function(ops.write_list.default, ([a, b],))
    out_variant = graph.call_function(torch.ops.aten.add.out, (a, b), {"out": c})
    copy_ = graph.call_function(torch.ops.aten.copy_.default, (c, a))
    assert node_effect(keyword).writes == (b,) and node_effect(keyword).reads == (a, b)
    assert set(node_effect(listed).writes) == {a, b}
    assert node_effect(out_variant).overwrites == (c,) and c not in node_effect(out_variant).reads
    assert node_effect(copy_).overwrites == (c,) and node_effect(copy_).reads == (a,)


def test_unsupported_clone_is_kept():
    graph = Graph()
    x = graph.placeholder("x")
    constant = graph.call_function(torch.ops.aten.clone.default, (3.0,))
    graph.output((x, constant))
    report = cleanpass.eliminate_clones_in_graph(graph)
    assert [d.reason for d in report.kept] == [decisions.UNSUPPORTED_CLONE]


def test_analysis_failure_keeps_every_clone(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated analysis bug")

    monkeypatch.setattr(eliminate, "GraphFacts", broken)
    out = run_pass(_lowered_style, torch.randn(8, 16))
    assert out.reasons == [decisions.ANALYSIS_ERROR] * 2 and out.check.ok


def test_decision_failure_keeps_that_clone(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated rule bug")

    monkeypatch.setattr(eliminate, "decide_sound", broken)
    out = run_pass(_lowered_style, torch.randn(8, 16))
    assert out.reasons == [decisions.ANALYSIS_ERROR] * 2 and out.check.ok


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown policy"):
        cleanpass.eliminate_clones(trace(_lowered_style, torch.randn(8, 16)), policy="fast")


@pytest.mark.parametrize("mode", ["fake", "symbolic", "oblivious"])
@pytest.mark.parametrize("donated", [(), (0,)])
def test_second_run_removes_nothing(mode, donated):
    def f(x):
        s = x * 2
        first, second = s.split([4, 4], dim=0)
        c1 = first.clone()
        ops.scale_(c1, 3.0)
        c2 = c1.clone()
        view = c2.view(64)
        c3 = x.clone()
        ops.scale_(c3, 2.0)
        return c2, second + 1, view * 2, c3

    first = run_pass(f, torch.randn(8, 16), donated=donated, mode=mode)
    assert first.check.ok, first.check.problems
    code = first.after.code
    again = cleanpass.eliminate_clones(first.after, donated=donated, fold=False)
    assert again.removed == [] and first.after.code == code
    assert count_clones(first.after) == first.report.clones_after


def test_bytes_reported_when_static_and_at_the_traced_size_when_symbolic():
    def f(x):
        return x.clone() + 1

    static = run_pass(f, torch.randn(8, 16)).report.removed[0]
    assert (static.bytes, static.bytes_formula) == (8 * 16 * 4, None)
    symbolic = run_pass(f, torch.randn(8, 16), mode="symbolic").report.removed[0]
    assert symbolic.bytes == 8 * 16 * 4
    assert symbolic.bytes_formula is not None and "s" in symbolic.bytes_formula  # e.g. "64*s0*s1"


def test_decisions_say_which_pass_made_the_clone():
    """A clone tagged in node.meta by the pass that created it reports that origin; an
    untagged clone is the model's own."""
    def f(x):
        return x.clone() + 1, x.clone() * 2

    gm = trace(f, torch.randn(4, 4))
    first, second = [n for n in gm.graph.nodes if n.target is torch.ops.aten.clone.default]
    first.meta[decisions.ORIGIN_KEY] = "lowering"
    report = cleanpass.eliminate_clones(gm)
    assert {d.clone: d.origin for d in report.removed} == {first.name: "lowering", second.name: "model"}
    assert report.by_origin() == {"lowering": (1, 0), "model": (1, 0)}


def test_keeps_written_clone_of_a_get_attr_constant():
    """A constant (`get_attr`, e.g. a frozen weight) is an input nobody donates."""
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("table", torch.randn(8, 16))

        def forward(self, x):
            c = self.table.clone()
            ops.scale_(c, 3.0)
            return c + x

    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    graph = Graph()
    x = graph.placeholder("x")
    table = graph.get_attr("table")
    clone = graph.call_function(torch.ops.aten.clone.default, (table,))
    graph.call_function(ops.scale_.default, (clone, 3.0))
    graph.output((graph.call_function(torch.ops.aten.add.Tensor, (clone, x)),))
    built = torch.fx.GraphModule(Scaled(), graph)
    from torch._subclasses.fake_tensor import FakeTensorMode

    FakeTensorProp(built, FakeTensorMode(allow_non_fake_inputs=True)).propagate(torch.randn(8, 16))
    out = run_pass(built, donated=(0,))
    assert out.reasons == [decisions.READ_ONLY_INPUT]
    assert out.check.ok, out.check.problems


def test_docs_list_every_reason_string():
    """Dashboards key on the reason strings; the table in docs/pass.md (linked from the README)
    is their documentation."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "pass.md").read_text()
    for reason in (decisions.REMOVED, decisions.FOLDED, *decisions.KEEP_REASONS, *decisions.VLLM_KEEP_REASONS):
        assert f"`{reason}`" in page, reason
