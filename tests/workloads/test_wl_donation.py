"""The pre-grad donation pass: records donated inputs, retargets, rejects reuse."""
from __future__ import annotations

import pytest
import torch
from torch import fx

from workloads import catalog, donation, pipeline

ir = torch.ops.cleanpass_ir


def _graph(fn) -> fx.Graph:  # noqa: ANN001
    return fx.symbolic_trace(fn).graph


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
def test_compile_rejects_reuse_of_a_donated_activation() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x, w, 1e-6) + x

    compiled = pipeline.compile_fn(f)
    with pytest.raises(Exception, match="donates") as info:
        compiled(torch.randn(4, 32), torch.randn(32))
    assert "DonationError" in repr(info.value) or isinstance(info.value, donation.DonationError)


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


def test_the_eager_check_leaves_inputs_alone_and_sees_views_as_not_donated() -> None:
    def f(x, w):  # noqa: ANN001, ANN202
        return ir.rms_norm.maybe_inplace(x.view(-1, x.shape[-1]), w, 1e-6)

    x, w = torch.randn(4, 32), torch.randn(32)
    before = x.clone()
    assert donation.observed_donations(f, (x, w)) == ()  # like the graph pass: placeholders only
    assert torch.equal(x, before)
