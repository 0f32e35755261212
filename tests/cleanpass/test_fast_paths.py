"""The shortcuts the pass takes for speed answer exactly as the slow ways they skip.

Each one runs per node or per clone of every graph (see `make bench-pass`); a shortcut that
answered differently would change decisions silently, so each is checked against the long way.
"""
from __future__ import annotations

import dataclasses
import types

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import Graph
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

from cleanpass import _compat, decisions
from cleanpass.alias import AliasClasses
from cleanpass.facts import GraphFacts
from cleanpass.mutation import PerOp, argument_roles, node_effect

aten = torch.ops.aten


def _symbolic(*sizes: int) -> torch.Tensor:
    mode = FakeTensorMode(shape_env=ShapeEnv())
    context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC] * len(sizes))
    return mode.from_tensor(torch.empty(*sizes), symbolic_context=context)


def test_storage_key_is_the_storage_identity_torch_gives_views_and_copies():
    base = torch.zeros(4, 6)
    assert _compat.storage_key(base) == _compat.storage_key(base[1:, 2:]) == base.untyped_storage()._cdata
    assert _compat.storage_key(base.clone()) != _compat.storage_key(base)
    assert _compat.storage_key(torch.zeros(2).to_sparse()) is None  # no storage: no key
    assert _compat.storage_key(3) is None


def test_same_symbolic_expression_is_equal_and_different_ones_are_not_assumed_equal():
    x = _symbolic(4, 6)
    rows, columns = x.shape
    assert _compat.statically_equal(rows, x.clone().shape[0])  # one expression: no proof needed
    assert _compat.statically_equal(rows * columns, x.numel())
    assert not _compat.statically_equal(rows, columns)  # 4 and 6 at trace time, unrelated symbols
    assert not _compat.statically_equal(rows, 4)  # a guard would be needed: not provable


def test_scaled_comparison_matches_the_product_it_skips():
    x = _symbolic(4, 6)
    numel, itemsize = x.numel(), x.element_size()
    nbytes = x.untyped_storage().nbytes()
    long_way = _compat.statically_equal(nbytes, numel * itemsize)
    assert _compat.statically_equal_scaled(nbytes, numel, itemsize) is long_way is True  # fills its storage
    assert not _compat.statically_equal_scaled(x[1:].untyped_storage().nbytes(), x[1:].numel(), itemsize)
    assert _compat.statically_equal_scaled(96, 24, 4) and not _compat.statically_equal_scaled(96, 23, 4)


def test_symbolic_clone_bytes_are_the_hint_and_the_printed_product():
    x = _symbolic(8, 16)
    graph = Graph()
    clone = graph.call_function(aten.clone.default, (graph.placeholder("x"),))
    clone.meta["val"] = x
    size, formula = decisions.clone_bytes(clone)
    assert size == 8 * 16 * 4
    assert formula == str(x.numel() * x.element_size())  # the uncached way
    assert decisions.clone_bytes(clone) == (size, formula)  # cached: the same answer


def _two_classes_joined_later() -> Graph:
    """x and y are written apart; `joined` is a view of x whose fake value names y's storage:
    it joins the two classes after both have facts (`GraphFacts` merges them mid-walk)."""
    with FakeTensorMode():
        a, b = torch.empty(4, 6), torch.empty(4, 6)
        view_of_a_meta_says_b = b.view(24)
    graph = Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    x.meta["val"], y.meta["val"] = a, b
    for target, value in ((x, a), (y, b)):
        graph.call_function(aten.mul_.Tensor, (target, 2.0)).meta["val"] = value
    joined = graph.call_function(aten.view.default, (x, [24]))  # structure: x; fake storage: y's
    joined.meta["val"] = view_of_a_meta_says_b
    later = graph.call_function(aten.sin.default, (joined,))
    later.meta["val"] = torch.empty_like(a)
    graph.output((later,))
    return graph


def _facts_the_long_way(graph: Graph) -> dict:
    """Per class (keyed by its sorted member names): what `GraphFacts` collects in one walk,
    from a separate `AliasClasses` and `node_effect` of every node, as it was first written."""
    nodes = list(graph.nodes)
    classes = AliasClasses(nodes)
    found: dict = {}

    def entry(node):
        return found.setdefault(classes.find(node), {"reads": [], "writes": [], "max_read": -1,
                                                     "inputs": [], "in_output": False})
    for position, node in enumerate(nodes):
        if node.op in ("placeholder", "get_attr"):
            entry(node)["inputs"].append(node.name)
        effect = node_effect(node)
        for member in effect.reads:
            facts = entry(member)
            facts["reads"].append((position, node.name, member.name))
            facts["max_read"] = position
            facts["in_output"] |= node.op == "output"
        for member in effect.writes:
            entry(member)["writes"].append((position, node.name, member.name))
    members: dict = {}
    for node in nodes:
        members.setdefault(classes.find(node), []).append(node.name)
    return {tuple(sorted(members[root])): facts for root, facts in found.items()}


def _facts_in_one_walk(graph: Graph) -> dict:
    facts = GraphFacts(graph)
    members: dict = {}
    for node in facts.nodes:
        members.setdefault(facts.aliases.find(node), []).append(node.name)
    seen = {}
    for root, names in members.items():
        aggregate = facts.class_of(root)
        if not (facts.reads_of(aggregate) or aggregate.writes or aggregate.inputs):
            continue
        seen[tuple(sorted(names))] = {
            "reads": sorted((p, n.name, m.name) for p, n, m in facts.reads_of(aggregate)),
            "writes": sorted((p, n.name, m.name) for p, n, m in aggregate.writes),
            "max_read": aggregate.max_read, "inputs": sorted(n.name for n in aggregate.inputs),
            "in_output": aggregate.in_output}
        assert list(aggregate.write_positions) == sorted(p for p, _, _ in aggregate.writes)
    return seen


def _sorted_lists(facts: dict) -> dict:
    return {key: {name: sorted(value) if isinstance(value, list) else value for name, value in entry.items()}
            for key, entry in facts.items() if entry["reads"] or entry["writes"] or entry["inputs"]}


def test_one_walk_collects_what_separate_walks_do_also_where_a_node_joins_two_classes():
    """`GraphFacts` builds the classes and their facts in one walk, merging facts where a later
    node joins two classes, and lists reads only when asked: the same facts as the long way."""
    graph = _two_classes_joined_later()
    one_walk = _facts_in_one_walk(graph)
    assert one_walk == _sorted_lists(_facts_the_long_way(graph))
    joined = one_walk[("mul__tensor", "mul__tensor_1", "view_default", "x", "y")]  # sin's is apart
    assert joined["writes"] == [(2, "mul__tensor", "x"), (3, "mul__tensor_1", "y")]
    assert joined["max_read"] == 5 and joined["inputs"] == ["x", "y"]


def test_one_walk_collects_what_separate_walks_do_on_the_generators_programs():
    from hypothesis import given, settings

    from .random_programs import programs
    from .test_property import COMMON, _traced

    @settings(max_examples=150, **COMMON)
    @given(programs())
    def check(program):
        graph = _traced(program).graph
        assert _facts_in_one_walk(graph) == _sorted_lists(_facts_the_long_way(graph)), program

    check()


def test_per_op_cache_computes_once_per_op_and_keeps_ops_apart():
    calls: list[object] = []

    def compute(op: object) -> str:
        calls.append(op)
        return str(op)

    cache = PerOp(compute)
    assert cache(aten.add.Tensor) == str(aten.add.Tensor) and cache(aten.mul.Tensor) == str(aten.mul.Tensor)
    assert cache(aten.add.Tensor) == str(aten.add.Tensor)
    assert calls == [aten.add.Tensor, aten.mul.Tensor]


def test_arguments_whose_schema_type_holds_no_tensor_have_no_role():
    """Sizes, dims, flags and numbers are skipped by type (once per op); every argument that
    may hold a tensor keeps its role, lists and optionals of tensors included."""
    def roles(op: object) -> list[str]:
        return [name for _, name, _ in argument_roles(op)[1]]

    assert roles(aten.sum.dim_IntList) == ["self"]  # dim: List[int]?, keepdim, dtype
    assert roles(aten.index.Tensor) == ["self", "indices"]  # List[Optional[Tensor]]
    assert roles(aten.cat.default) == ["tensors"]
    assert roles(aten.scaled_dot_product_attention.default) == ["query", "key", "value", "attn_mask"]
    assert roles(aten.view.default) == [] and not argument_roles(aten.view.default)[0]  # an alias
    assert roles(aten.copy_.default) == ["self", "src"]
    assert argument_roles(aten.add.Tensor) == (True, ((0, "self", "read"), (1, "other", "read")))


def test_shape_guard_check_without_torchs_strict_mode():
    """The fallback of `_compat._no_new_guards` (a torch without `error_on_new_guards`): a
    block that adds a guard raises ShapeGuardNeeded naming it; one that adds none passes."""
    env = types.SimpleNamespace(guards=[])
    with _compat._no_new_guards(env):
        pass
    with pytest.raises(_compat.ShapeGuardNeeded, match="Ne"):
        with _compat._no_new_guards(env):
            env.guards.append(types.SimpleNamespace(expr="Ne(s0, 1)"))
    assert _compat.guard_texts(env) == ("Ne(s0, 1)",) and _compat.guard_count(None) == 0


@pytest.mark.parametrize("strict", ["torch", "by_hand"])
def test_shape_guard_refused_before_it_is_recorded(strict, monkeypatch):
    """`_no_new_guards` on a real shape environment, with torch's `error_on_new_guards` (2.13)
    and with the refusal made by hand where torch lacks it (2.11, the GPU machines): a question
    that would guard raises ShapeGuardNeeded, records no guard and leaves nothing cached, so the
    same question asked afterwards, outside the block, guards as usual."""
    from torch._dynamo.source import ConstantSource
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    if strict == "by_hand":
        monkeypatch.delattr(ShapeEnv, "error_on_new_guards", raising=False)
    env = ShapeEnv()
    size = env.create_symintnode(env.create_symbol(5, ConstantSource("tokens")), hint=5)
    with _compat._no_new_guards(env):
        assert size >= 0  # provable: no guard
    with pytest.raises(_compat.ShapeGuardNeeded, match=r"s\d+ > 3"):
        with _compat._no_new_guards(env):
            bool(size > 3)
    assert _compat.guard_count(env) == 0 and "_check_frozen" not in vars(env)
    assert bool(size > 3) and _compat.guard_count(env) == 1


def test_decision_as_dict_is_dataclasses_asdict():
    for decision in (decisions.Decision("c", "s", decisions.REMOVED, 64, None),
                     decisions.Decision("c", "s", decisions.FOLDED, None, "8*s0", "lowering")):
        found = decision.as_dict()
        assert found == dataclasses.asdict(decision)
        found["reason"] = "changed"  # a copy: the decision is untouched
        assert decision.reason != "changed"


def test_decide_builds_the_decision_the_dataclass_would():
    graph = Graph()
    with FakeTensorMode():
        value = torch.empty(3, 5)
    x = graph.placeholder("x")
    x.meta["val"] = value
    clone = graph.call_function(aten.clone.default, (x,))
    clone.meta.update(val=torch.empty_like(value, device="meta"), **{decisions.ORIGIN_KEY: "lowering"})
    found = decisions.decide(clone, "x", decisions.REMOVED)
    expected = decisions.Decision(clone.name, "x", decisions.REMOVED, 60, None, "lowering")
    assert found == expected and hash(found) == hash(expected) and repr(found) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.reason = decisions.FOLDED  # type: ignore[misc]
