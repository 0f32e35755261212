"""The pre-grad donation pass: records donated inputs, retargets, rejects reuse."""
from __future__ import annotations

import copy
import logging

import pytest
import torch
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx

import cleanpass
from workloads import catalog, donation, lowering, pipeline

ir = torch.ops.cleanpass_ir


H = 16


def _graph(fn) -> fx.Graph:  # noqa: ANN001
    return fx.symbolic_trace(fn).graph


def _dynamo_graph(fn, *args) -> fx.Graph:  # noqa: ANN001
    """The Torch IR graph Dynamo hands the pre-grad pass (source lines in node.meta)."""
    graphs: list[fx.Graph] = []

    def capture(gm, example_inputs):  # noqa: ANN001, ANN202
        graphs.append(copy.deepcopy(gm.graph))
        return gm.forward

    torch.compile(fn, backend=capture, fullgraph=True)(*args)
    return graphs[0]


def test_records_donated_placeholders_and_retargets() -> None:
    def f(w, x, r):  # noqa: ANN001, ANN202
        h, r2 = ir.fused_add_rms_norm.maybe_inplace(x, r, w, 1e-6)
        return ir.rms_norm.maybe_inplace(h, w, 1e-6), r2

    g = _graph(f)
    assert donation.find_donations(g) == (1, 2)
    targets = [n.target for n in g.nodes if n.op == "call_function"]
    assert ir.fused_add_rms_norm.default in targets and ir.rms_norm.default in targets
    assert not any(getattr(t, "_overloadname", "") == "maybe_inplace" for t in targets)


def test_reusing_a_donated_activation_raises_naming_the_node() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        y = ir.rms_norm.maybe_inplace(x, w, 1e-6)
        return y + x

    with pytest.raises(donation.DonationError, match=r"rms_norm.*donates x.*add"):
        donation.find_donations(_graph(f))


def test_reads_before_the_donating_call_are_fine() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        s = x.sum()
        return ir.rms_norm.maybe_inplace(x, w, 1e-6) * s

    assert donation.find_donations(_graph(f)) == (0,)


def test_donating_twice_raises() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        a = ir.rms_norm.maybe_inplace(x, w, 1e-6)
        return a + ir.rms_norm.maybe_inplace(x, w, 1e-6)

    with pytest.raises(donation.DonationError):
        donation.find_donations(_graph(f))


@pytest.mark.slow
def test_compile_rejects_reuse_of_a_donated_activation_with_our_error_and_source_line() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x, w, 1e-6) + x

    compiled = pipeline.compile_fn(f)
    with pytest.raises(donation.DonationError, match=r"test_wl_donation.py:\d+ \(return ir.rms_norm"):
        compiled(torch.randn(4, 32), torch.randn(32))


def test_every_workload_declares_what_its_maybe_inplace_calls_donate() -> None:
    for name, wl in catalog.all_workloads().items():
        built = wl.build(wl.shapes("test")[0], torch.float32, "cpu")
        assert donation.check_declared(name, built.fn, built.fresh_inputs(), built.donated) == \
            tuple(built.donated), name


def test_a_wrong_declaration_is_a_clear_error() -> None:
    wl = catalog.get("donated_chain")
    built = wl.build(wl.shapes("test")[0], torch.float32, "cpu")
    with pytest.raises(donation.DeclarationError, match=r"donated_chain.*declares inputs \(0,\).*donate \(0, 1\)"):
        donation.check_declared("donated_chain", built.fn, built.fresh_inputs(), (0,))
    plain = catalog.get("norm_chain").build(wl.shapes("test")[0], torch.float32, "cpu")
    with pytest.raises(donation.DeclarationError, match=r"donate \(\)"):
        donation.check_declared("norm_chain", plain.fn, plain.fresh_inputs(), (0, 1))


def test_the_eager_check_leaves_inputs_alone_and_applies_the_view_rule_of_the_graph_pass() -> None:
    """A whole-tensor view of an input donates it, in the eager check as in the graph pass; part
    of an input (a slice, a split) donates nothing. One rule: donation.follow_views."""
    def whole(x, r, w):  # noqa: ANN001, ANN202
        return _flat_fused(x, r, w)

    def chained(x, r, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x.flatten(0, 1).unsqueeze(0).squeeze(0).t().t(), w, 1e-6), r

    def part(x, r, w):  # noqa: ANN001, ANN202
        a, _ = x.split(H // 2, dim=-1)
        return ir.rms_norm.maybe_inplace(x[:1].view(-1, H), w, 1e-6), ir.rms_norm.maybe_inplace(a, w[: H // 2], 1e-6)

    def copied(x, r, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x.contiguous(), w, 1e-6), r  # a new value, even when x is contiguous

    args = (torch.randn(2, 3, H), torch.randn(2, 3, H), torch.randn(H))
    before = [a.clone() for a in args]
    for fn, want in ((whole, (0, 1)), (chained, (0,)), (part, ()), (copied, ())):
        assert donation.observed_donations(fn, args) == want, fn.__name__
        assert donation.find_donations(_dynamo_graph(fn, *args)) == want, fn.__name__
    assert all(torch.equal(a, b) for a, b in zip(args, before))


def _flat_fused(x, r, w):  # noqa: ANN001, ANN202
    return ir.fused_add_rms_norm.maybe_inplace(x.view(-1, H), r.reshape(-1, H), w, 1e-6)


def test_a_whole_view_of_an_input_donates_the_input() -> None:
    assert donation.find_donations(_graph(_flat_fused)) == (0, 1)

    def chained(x, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x.flatten(0, 1).unsqueeze(0).squeeze(0), w, 1e-6)

    assert donation.find_donations(_graph(chained)) == (0,)


def test_part_of_an_input_is_not_donated_and_warns_once_with_the_source_line(caplog) -> None:  # noqa: ANN001
    def f(x, w):  # noqa: ANN001, ANN202
        a = ir.rms_norm.maybe_inplace(x[:2], w, 1e-6)
        return a

    warned: set = set()
    with caplog.at_level(logging.WARNING, logger="workloads.donation"):
        for _ in range(2):  # a recompile traces again
            assert donation.find_donations(_dynamo_graph(f, torch.randn(4, H), torch.randn(H)), warned) == ()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "argument `x` of rms_norm.maybe_inplace is only part of graph input" in lines[0]
    assert "test_wl_donation.py:" in lines[0] and "x[:2]" in lines[0]


def test_a_split_of_an_input_is_not_donated() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        a, b = x.split(H // 2, dim=-1)
        return ir.rms_norm.maybe_inplace(a, w[: H // 2], 1e-6), b

    assert donation.find_donations(_graph(f)) == ()


def test_using_the_input_after_donating_its_view_raises_naming_both_lines() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        y = ir.rms_norm.maybe_inplace(x.view(-1, H), w, 1e-6)
        return y, x.sum()

    with pytest.raises(donation.DonationError, match=r"donates x .*test_wl_donation.py:\d+ \(return y, x.sum"):
        donation.find_donations(_dynamo_graph(f, torch.randn(4, H), torch.randn(H)))

    def g(x, w):  # noqa: ANN001, ANN202
        v = x.view(-1, H)
        y = ir.rms_norm.maybe_inplace(v, w, 1e-6)
        return y, v.t()  # another view of the donated storage, read later

    with pytest.raises(donation.DonationError):
        donation.find_donations(_graph(g))


def _lowered_with_donations(fn, *args):  # noqa: ANN001, ANN202
    """make_fx graph of ``fn`` (fake values on every node), donation pass, lowering."""
    gm = make_fx(fn, tracing_mode="fake")(*args)
    donated = donation.find_donations(gm.graph)
    lowering.lower_ir_ops(gm.graph)
    gm.recompile()
    return gm, donated


@pytest.mark.parametrize("policy", ["sound"])
def test_pass_on_an_input_donated_through_a_view_is_bit_exact(policy: str) -> None:
    """Soundness: x is donated through x.view(-1, H), r is kept; the pass may write x only."""
    def f(x, r, w):  # noqa: ANN001, ANN202
        h = ir.rms_norm.maybe_inplace(x.view(-1, H), w, 1e-6)
        return ir.fused_add_rms_norm.default(h, r.view(-1, H), w, 1e-6)

    args = (torch.randn(2, 3, H), torch.randn(2, 3, H), torch.randn(H))
    gm, donated = _lowered_with_donations(f, *args)
    assert donated == (0,)
    before = copy.deepcopy(gm)
    report = cleanpass.eliminate_clones(gm, donated=donated, policy=policy)
    assert report.clones_before == 3
    # x's clone goes (donated through its view); r's is not removed (a view of a kept input):
    # folding turns it into the kernel's out-of-place form
    assert (len(report.removed), report.clones_after, len(report.folded)) == (2, 0, 1)
    result = cleanpass.verify.check(before, gm, donated=donated, trials=3)
    assert result.ok, result.problems
    x, r, w = (a.clone() for a in args)
    gm(x, r, w)
    assert torch.equal(r, args[1])


def test_vllm_policy_writes_a_kept_input_reached_through_a_view() -> None:
    """The reference policy's view hole on flattened tokens: functional overload, nothing
    donated, yet the clone of r.view(-1, H) is dropped and the caller's r is overwritten."""
    def f(x, r, w):  # noqa: ANN001, ANN202
        return ir.fused_add_rms_norm.default(x.view(-1, H), r.view(-1, H), w, 1e-6)

    args = (torch.randn(2, 3, H), torch.randn(2, 3, H), torch.randn(H))
    gm, donated = _lowered_with_donations(f, *args)
    assert donated == ()
    before = copy.deepcopy(gm)
    assert not cleanpass.eliminate_clones(copy.deepcopy(gm), policy="sound").removed  # both kept (folded)
    cleanpass.eliminate_clones(gm, policy="vllm")
    result = cleanpass.verify.check(before, gm, donated=())
    assert not result.ok and any("non-donated input" in p for p in result.problems)


@pytest.mark.slow
def test_compiled_view_donation_removes_every_clone_and_keeps_other_inputs() -> None:
    def f(x, r, w, keep):  # noqa: ANN001, ANN202
        h, r2 = _flat_fused(x, r, w)
        return ir.fused_add_rms_norm.default(h, keep.view(-1, H), w, 1e-6), r2

    args = (torch.randn(2, 4, H), torch.randn(2, 4, H), torch.randn(H), torch.randn(2, 4, H))
    want = f(*(a.clone() for a in args))
    compiled = pipeline.compile_fn(f, policy="sound")
    ins = tuple(a.clone() for a in args)
    got = compiled(*ins)
    rep = compiled.reports[-1]
    assert (rep.clones_before, rep.clones_after, len(rep.folded)) == (4, 0, 1)  # keep's clone: folded
    assert compiled.donated[-1] and torch.equal(ins[3], args[3])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
