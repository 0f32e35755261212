"""End to end through Inductor: a mutable custom op lowered in the post pass, then cleanpass."""
from __future__ import annotations

import pytest
import torch
from torch.fx import Graph

import cleanpass
from cleanpass import decisions

from .ops import ops

pytestmark = pytest.mark.slow


class LowerScaled(cleanpass.CloneEliminationPass):
    """`scaled(x, f)` -> `c = clone(x); scale_(c, f)`, the way a serving stack lowers, then
    (unless `enabled` is False) clone elimination."""

    def __call__(self, graph: Graph) -> None:
        for node in list(graph.nodes):
            if node.target is not ops.scaled.default:
                continue
            source, factor = node.args
            with graph.inserting_before(node):
                clone = graph.call_function(torch.ops.aten.clone.default, (source,))
                fake = source.meta["val"]
                with fake.fake_mode:
                    clone.meta["val"] = torch.ops.aten.clone.default(fake)
                kernel = graph.call_function(ops.scale_.default, (clone, factor))
                kernel.meta["val"] = None
            node.replace_all_uses_with(clone)
            graph.erase_node(node)
        super().__call__(graph)


def _program(x, w):
    y = ops.scaled(x + w, 2.0)
    z = ops.scaled(y, 3.0)
    return z + 1, ops.scaled(x * w, 0.5)


def _program_reading_y_late(x, w):
    y = ops.scaled(x + w, 2.0)
    z = ops.scaled(y, 3.0)
    return z + 1, y * 4


def _compile(fn, lowering, dynamic=True):
    options = {"post_grad_custom_post_pass": lowering, "fx_graph_cache": False}
    return torch.compile(fn, backend="inductor", options=options, dynamic=dynamic, fullgraph=True)


@pytest.mark.parametrize("fn,expected_after", [(_program, 0), (_program_reading_y_late, 1)])
def test_pass_on_and_off_agree_bit_for_bit_with_fewer_clones(fn, expected_after):
    torch._dynamo.reset()
    on, off = LowerScaled(policy="sound"), LowerScaled(policy="sound", enabled=False)
    compiled_on, compiled_off = _compile(fn, on), _compile(fn, off)
    for tokens in (3, 17):
        x, w = torch.randn(tokens, 64), torch.randn(64)
        x0, w0 = x.clone(), w.clone()
        with_pass, without = compiled_on(x, w), compiled_off(x, w)
        for a, b in zip(with_pass, without):
            assert cleanpass.verify.bits_equal(a, b)
        for a, b in zip(with_pass, fn(x, w)):
            torch.testing.assert_close(a, b)
        assert torch.equal(x, x0) and torch.equal(w, w0), "non-donated inputs must stay untouched"
    report = on.reports[-1]
    # a clone that must stay is folded into the kernel's out-of-place form (tests/cleanpass/ops.py)
    assert report.clones_after == 0
    assert len(report.folded) == expected_after < report.clones_before
    assert off.reports == []
    if expected_after:
        assert [d.reason for d in report.folded] == [decisions.FOLDED]


def test_uuid_changes_with_policy_and_switch():
    ids = {cleanpass.CloneEliminationPass(policy=p, enabled=e).uuid()
           for p in ("sound", "vllm") for e in (True, False)}
    assert len(ids) == 4 and all(ids)


def test_donation_context_reaches_the_pass():
    def f(x):
        return ops.scaled(x, 2.0) + 1

    torch._dynamo.reset()
    lowering = LowerScaled(policy="sound")
    x = torch.randn(4, 8)
    with cleanpass.donated_inputs([0]):
        assert cleanpass.current_donated() == (0,)
        result = _compile(f, lowering, dynamic=False)(x.clone())  # static: x is placeholder 0
    assert cleanpass.current_donated() == ()
    torch.testing.assert_close(result, f(x))
    assert lowering.reports[-1].clones_after == 0


def test_dump_dir_writes_graph_before_and_after(tmp_path):
    graph = torch.fx.symbolic_trace(lambda x: x + 1).graph
    cleanpass.CloneEliminationPass(dump_dir=tmp_path)(graph)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000_sound_after.txt", "000_sound_before.txt"]
