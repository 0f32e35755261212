"""vLLM 0.33.0's unit cases for its clone elimination, in our words, run against both policies.

Each case here re-states one of the 22 cases vLLM ships for `UnsafeCloneEliminationPass`: the
graph, what the pass must leave, and what must hold when the result runs. `vllm` must decide as
the real pass does (`make peer` checks that against vLLM itself); `sound` must pass every case,
since each is safe. Cases 10-15 test the "does this user write the clone" predicate; ours are
`reference.writes_clone` (vllm) and the mutation analysis (sound).
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch.fx import GraphModule

from cleanpass import decisions, eliminate_clones, reference
from cleanpass.mutation import node_effect

from .helpers import count_clones, run_pass, trace

POLICIES = ["sound", "vllm"]
aten = torch.ops.aten


def _storages(*tensors: torch.Tensor) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors}


def _assert_kept(policy: str, fn, *inputs: torch.Tensor, donated=(), expected: int) -> None:
    out = run_pass(fn, *inputs, donated=donated, policy=policy)
    assert out.report.clones_after == expected, (policy, out.reasons)
    assert out.check.ok, out.check.problems


# 1-6, 12-13, 16-18: whole graphs -------------------------------------------------------------

@pytest.mark.parametrize("policy", POLICIES)
def test_case01_read_only_clone_is_removed(policy):
    _assert_kept(policy, lambda x: x.clone() + 1, torch.randn(2, 3), expected=0)


def _written_clone_and_its_source(x):
    s = x.relu()
    c = s.clone()
    c.add_(1)
    return s, c


@pytest.mark.parametrize("policy", POLICIES)
def test_case02_written_clone_stays_when_source_is_returned(policy):
    _assert_kept(policy, _written_clone_and_its_source, torch.randn(2, 3), expected=1)


def _written_clone_only(x):
    c = x.relu().clone()
    c.add_(1)
    return c


@pytest.mark.parametrize("policy", POLICIES)
def test_case03_written_clone_goes_when_source_is_dead(policy):
    _assert_kept(policy, _written_clone_only, torch.randn(2, 3), expected=0)


@pytest.mark.parametrize("policy", POLICIES)
def test_case04_chain_of_two_clones_goes(policy):
    _assert_kept(policy, lambda x: x.relu().clone().clone() + 1, torch.randn(2, 3), expected=0)


@pytest.mark.parametrize("policy", POLICIES)
def test_case05_compacting_clone_of_column_slice_stays(policy):
    gm = trace(lambda x: x[:, :3].contiguous(), torch.randn(4, 5))
    eliminate_clones(gm, policy=policy)
    assert count_clones(gm) == 1
    assert gm(torch.randn(4, 5)).stride() == (3, 1)


@pytest.mark.parametrize("policy", POLICIES)
def test_case06_two_read_only_clones_of_one_input_go(policy):
    _assert_kept(policy, lambda x: x.clone() + x.clone(), torch.randn(2, 3), expected=0)


def _returned_twice(x):
    s = x.relu()
    return s.clone(), s.clone()


# 7-11: a returned clone must not make an output share storage with an input or another output
RETURNED = [
    pytest.param(lambda x: x.clone(), 1, id="input"),
    pytest.param(lambda x: x[:2].clone(), 1, id="input_view"),
    pytest.param(lambda x: x.clone()[:2], 1, id="view_of_clone"),
    pytest.param(_returned_twice, 1, id="shared_intermediate"),
    pytest.param(lambda x: x.relu().clone(), 0, id="intermediate"),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("fn, expected", RETURNED)
def test_case07_11_returned_clone_never_aliases_graph_io(policy, fn, expected):
    x = torch.randn(4, 3)
    out = run_pass(fn, x, policy=policy)
    assert out.report.clones_after == expected, out.reasons
    results = out.after(x)
    results = results if isinstance(results, tuple) else (results,)
    assert len(_storages(x, *results)) == 1 + len(results)
    assert out.check.ok, out.check.problems


def test_returned_clone_reasons_of_the_vllm_policy():
    """The refusal has its own reason; without fake tensors vLLM assumes aliasing."""
    fake = run_pass(lambda x: x.clone(), torch.randn(4, 3), policy="vllm")
    assert fake.reasons == [decisions.VLLM_WOULD_ALIAS_GRAPH_IO]
    gm = trace(lambda x: x.relu().clone() + 1, torch.randn(4, 3))
    for node in gm.graph.nodes:
        node.meta.pop("val", None)
    bare = eliminate_clones(gm, policy="vllm")
    assert [d.reason for d in bare.kept] == [decisions.VLLM_STORAGE_UNKNOWN]


@pytest.mark.parametrize("policy", POLICIES)
def test_case12_graph_without_clones_is_unchanged(policy):
    gm = trace(lambda x: x + 1, torch.randn(2, 3))
    before = str(gm.graph)
    report = eliminate_clones(gm, policy=policy)
    assert report.clones_before == 0 and str(gm.graph) == before


@pytest.mark.parametrize("policy", POLICIES)
def test_case13_second_run_removes_nothing(policy):
    gm = trace(lambda x: x.clone() + 1, torch.randn(2, 3))
    assert len(eliminate_clones(gm, policy=policy).removed) == 1
    again = eliminate_clones(gm, policy=policy)
    assert again.clones_before == 0
    x = torch.randn(2, 3)
    torch.testing.assert_close(gm(x), x + 1)


@pytest.mark.parametrize("policy", POLICIES)
def test_case16_written_clone_of_donated_input_goes(policy):
    def f(x):
        c = x.clone()
        c.add_(1)
        return c

    _assert_kept(policy, f, torch.randn(2, 3), donated=(0,), expected=0)


@pytest.mark.parametrize("policy", POLICIES)
def test_case17_written_clone_of_kept_input_stays_and_inputs_are_untouched(policy):
    def f(x, y):
        c = x.clone()
        c.add_(1)
        return x, c

    x, y = torch.randn(2, 3), torch.randn(2, 3)
    x0, y0 = x.clone(), y.clone()
    out = run_pass(f, x, y, policy=policy)
    assert out.report.clones_after == 1
    out.after(x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("policy", POLICIES)
def test_case18_one_of_two_inputs_donated_leaves_one_clone(policy):
    def f(x, y):
        cx, cy = x.clone(), y.clone()
        cx.add_(1)
        cy.add_(2)
        return cx, cy

    out = run_pass(f, torch.randn(2, 3), torch.randn(2, 3), donated=(0,), policy=policy)
    assert out.report.clones_after == 1 and out.report.kept[0].source == "y_1"
    assert out.check.ok, out.check.problems


# 14-15, 19-22: which users write -----------------------------------------------------------

def _writes(policy: str, user, node) -> bool:
    if policy == "vllm":
        return reference.writes_clone(user, node)
    return node in node_effect(user).writes


def _graph_with(fn, *inputs) -> tuple[GraphModule, list]:
    gm = trace(fn, *inputs, mode="real")
    return gm, [n for n in gm.graph.nodes if n.op == "placeholder"]


def _node(gm: GraphModule, target) -> torch.fx.Node:
    return next(n for n in gm.graph.nodes if n.op == "call_function" and n.target is target)


@pytest.mark.parametrize("policy", POLICIES)
def test_case14_output_writes_nothing(policy):
    gm, (x,) = _graph_with(lambda x: x, torch.randn(2, 3))
    assert not _writes(policy, gm.graph.output_node(), x)


@pytest.mark.parametrize("policy", POLICIES)
def test_case15_out_of_place_add_writes_nothing(policy):
    gm, (x, y) = _graph_with(lambda x, y: x + y, torch.randn(2, 3), torch.randn(2, 3))
    add = _node(gm, aten.add.Tensor)
    assert not _writes(policy, add, x) and not _writes(policy, add, y)


def _add_in_place(x, y):
    x.add_(y)
    return x


def _copy_into(x, y):
    x.copy_(y)
    return x


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("fn, target", [(_add_in_place, aten.add_.Tensor),
                                        (_copy_into, aten.copy_.default)],
                         ids=["case19_add_", "case20_copy_"])
def test_case19_20_in_place_op_writes_its_first_argument_only(policy, fn, target):
    gm, (x, y) = _graph_with(fn, torch.randn(2, 3), torch.randn(2, 3))
    node = _node(gm, target)
    assert _writes(policy, node, x) and not _writes(policy, node, y)


@pytest.mark.parametrize("policy", POLICIES)
def test_case21_auto_functionalized_writes_nothing(policy):
    from torch._higher_order_ops.auto_functionalize import auto_functionalized

    gm, (x,) = _graph_with(lambda x: x, torch.randn(2, 3))
    with gm.graph.inserting_before(gm.graph.output_node()):
        wrapper = gm.graph.call_function(auto_functionalized, kwargs={"input": x})
    assert not _writes(policy, wrapper, x)


class _OpaqueHop(torch._ops.HigherOrderOperator):
    def __call__(self, *args, **kwargs):
        return args[0]


@pytest.mark.parametrize("policy", POLICIES)
def test_case22_other_higher_order_op_counts_as_a_write(policy):
    gm, (x,) = _graph_with(lambda x: x, torch.randn(2, 3))
    with gm.graph.inserting_before(gm.graph.output_node()):
        hop = gm.graph.call_function(_OpaqueHop("cleanpass_test_opaque_hop"), args=(x,))
    assert _writes(policy, hop, x)


# beyond vLLM's own cases: the higher-order-op rule inside the pass -----------------------------

def test_vllm_policy_keeps_clone_handed_to_an_opaque_hop_when_source_is_read_later():
    """A clone passed to an unknown higher-order op counts as written (vLLM 0.33): its source
    being read after that op keeps the clone; before 0.33's rule our model removed it."""
    gm = trace(lambda x: x.relu().clone() * 2, torch.randn(2, 3))
    relu, clone = _node(gm, aten.relu.default), _node(gm, aten.clone.default)
    mul = _node(gm, aten.mul.Tensor)
    with gm.graph.inserting_after(clone):
        hop = gm.graph.call_function(_OpaqueHop("cleanpass_test_opaque_hop2"), args=(clone,))
    with gm.graph.inserting_after(mul):
        later = gm.graph.call_function(aten.neg.default, args=(relu,))
    gm.graph.output_node().args = ((mul, later, hop),)
    for policy in POLICIES:
        report = eliminate_clones(copy.deepcopy(gm), policy=policy)
        assert report.clones_after == 1, (policy, report.kept)
    assert eliminate_clones(copy.deepcopy(gm), policy="vllm").kept[0].reason == \
        decisions.VLLM_SOURCE_USED_AFTER_WRITE


def test_vllm_policy_asserts_on_a_user_it_cannot_classify():
    """vLLM 0.33 asserts when a clone's user is neither an op overload nor a higher-order op."""
    gm = trace(lambda x: x.clone() + 1, torch.randn(2, 3))
    clone = _node(gm, aten.clone.default)
    with gm.graph.inserting_after(clone):
        odd = gm.graph.call_function(torch.neg, args=(clone,))
    gm.graph.output_node().args = ((*gm.graph.output_node().args[0:1], odd),)
    with pytest.raises(AssertionError, match="unsupported user"):
        eliminate_clones(copy.deepcopy(gm), policy="vllm")
    sound = eliminate_clones(copy.deepcopy(gm), policy="sound")
    assert sound.clones_before == 1
