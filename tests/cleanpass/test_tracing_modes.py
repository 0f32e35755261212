"""One program, one set of decisions, however it was traced (cleanpass.refake).

make_fx on real tensors records a fresh fake value per node (a view on its own storage, at
offset 0); the pass re-derives the values on fake tensors before deciding. Checked on hand-made
cases, on the whole workload catalog (the transformers layers included) traced on fake tensors,
on real tensors and through torch.compile, and on random programs (test_property.py).
"""
from __future__ import annotations

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import cleanpass
from cleanpass import decisions, refake

from .helpers import run_pass, trace
from .ops import ops

aten = torch.ops.aten


def _split_program(x):
    a, b = x.split(2)
    c = a.clone()
    ops.scale_(c, 2.0)
    return c * b


def test_a_real_trace_records_no_aliasing_and_a_fake_one_does():
    x = torch.randn(4, 6)
    assert refake.aliasing_recorded(trace(_split_program, x, mode="fake").graph)
    real = trace(_split_program, x, mode="real")
    assert not refake.aliasing_recorded(real.graph)
    second = [n for n in real.graph.nodes if n.name == "getitem_1"][0]
    assert second.meta["val"].storage_offset() == 0  # what the trace wrote: not the real offset


def test_refresh_gives_views_their_base_storage_and_real_offsets():
    gm = trace(_split_program, torch.randn(4, 6), mode="real")
    assert refake.refresh(gm.graph)
    assert refake.aliasing_recorded(gm.graph)
    nodes = {n.name: n for n in gm.graph.nodes}
    first, second, x = (nodes[name].meta["val"] for name in ("getitem", "getitem_1", "x_1"))
    assert second.storage_offset() == 12 and first.storage_offset() == 0
    assert first.untyped_storage()._cdata == second.untyped_storage()._cdata == x.untyped_storage()._cdata


def test_a_lowering_leaving_one_stale_view_value_is_not_a_real_trace():
    """One view whose value names another storage (a rewired node's old value) is not the sign
    of a real trace; the graph is decided on its values as they are."""
    gm = trace(_split_program, torch.randn(4, 6), mode="fake")
    first = [n for n in gm.graph.nodes if n.name == "getitem"][0]
    first.meta["val"] = first.meta["val"].clone()
    assert refake.aliasing_recorded(gm.graph)


@pytest.mark.parametrize("mode", ["fake", "real"])
def test_split_parts_decide_alike(mode):
    out = run_pass(_split_program, torch.randn(4, 6), donated=(0,), mode=mode)
    assert len(out.report.removed) == 1 and out.check.ok, out.check.problems


@pytest.mark.parametrize("mode", ["fake", "real"])
def test_an_offset_the_trace_did_not_record_is_not_trusted(mode):
    """Rows 2.. of x handed to scale_, which did not declare it takes any offset: a real trace
    says the view starts at 0 like its clone, but the clone changes the offset (condition 4)."""
    def f(x):
        c = x[2:].clone()
        ops.scale_(c, 2.0)
        return c + 1

    out = run_pass(f, torch.randn(4, 6), donated=(0,), mode=mode)
    assert out.reasons == [decisions.STRIDED_USER]
    assert out.check.ok


# an op with no fake kernel: a real trace runs it, the values cannot be re-derived
@torch.library.custom_op("cleanpass_test::no_fake_double", mutates_args=())
def no_fake_double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_values_that_cannot_be_rederived_keep_every_clone():
    def f(x):
        a, b = x.split(2)
        c = a.clone()
        ops.scale_(c, 2.0)
        return c * torch.ops.cleanpass_test.no_fake_double(b)

    out = run_pass(f, torch.randn(4, 6), donated=(0,), mode="real")
    assert out.reasons == [decisions.ANALYSIS_ERROR]
    assert out.check.ok


def _counts(report: cleanpass.CloneReport) -> tuple[int, int, int, int]:
    return report.clones_before, len(report.removed), len(report.folded), len(report.kept)


def _traced_catalog(name: str, mode: str) -> tuple[int, int, int, int]:
    from workloads import catalog, donation, lowering

    wl = catalog.get(name)
    built = wl.build(wl.shapes("test")[0], torch.float32, "cpu")
    gm = make_fx(built.fn, tracing_mode=mode, _allow_non_fake_inputs=True)(*built.fresh_inputs())
    donated = donation.find_donations(gm.graph)
    lowering.lower_ir_ops(gm.graph)
    gm.recompile()
    return _counts(cleanpass.eliminate_clones(gm, donated=donated))


def _catalog() -> list[str]:
    from workloads import catalog

    return sorted(catalog.all_workloads())


@pytest.mark.slow
@pytest.mark.parametrize("name", _catalog())
def test_the_catalog_decides_alike_traced_on_fake_and_real_tensors_and_compiled(name):
    """Every workload (the transformers layers too): the graph make_fx records on fake tensors,
    the one on real tensors, and the post-grad graph torch.compile hands the pass get the same
    removed/folded/kept counts."""
    from workloads import catalog, selfcheck

    wl = catalog.get(name)
    if wl.unavailable():
        pytest.skip(wl.unavailable())
    fake, real = _traced_catalog(name, "fake"), _traced_catalog(name, "real")
    compiled = selfcheck.compile_run(wl, wl.shapes("test")[0], "cleanpass").compiled.reports[-1]
    assert fake == real == _counts(compiled)
    assert fake[0] > 0
