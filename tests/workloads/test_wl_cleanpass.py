"""Workloads through cleanpass: exact clone counts, bit-exact with the no-pass compile, the
qkv/rotary cases keep exactly the clones they must, donated inputs reach the pass."""
from __future__ import annotations

import pytest
import torch

from workloads import catalog, pipeline, selfcheck

cleanpass = pytest.importorskip("cleanpass")

WORKLOADS = sorted(catalog.all_workloads())
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("variant", ["cleanpass", "vllm"])
@pytest.mark.parametrize("name", WORKLOADS)
def test_clone_counts_left_by_the_pass(name: str, variant: str, compiled_run) -> None:  # noqa: ANN001
    run = compiled_run(name, variant)
    assert run.clones == catalog.get(name).expected_clones_for(run.shape)[variant]


@pytest.mark.parametrize("name", WORKLOADS)
def test_sound_pass_is_bit_exact_with_no_pass(name: str, compiled_run) -> None:  # noqa: ANN001
    with_pass, without = compiled_run(name, "cleanpass"), compiled_run(name, "lowered")
    assert with_pass.problems == []
    for a, b in zip(with_pass.outputs, without.outputs, strict=True):
        assert torch.equal(a, b)


def test_vllm_policy_breaks_when_the_base_of_a_view_is_read(compiled_run) -> None:  # noqa: ANN001
    """The reference policy's view hole: it drops q's clone though the base qk is returned."""
    bad, good = compiled_run("rotary_views_base_read", "vllm"), compiled_run("rotary_views_base_read", "lowered")
    assert not torch.equal(bad.outputs[2], good.outputs[2])
    assert "vllm" in catalog.get("rotary_views_base_read").expected_wrong


def test_reports_tell_the_lowerings_clones_from_the_models(compiled_run) -> None:  # noqa: ANN001
    """llama_block: 8 clones from the lowering (the inputs' 2 kept by elimination and folded;
    rotary's q/k clones of strided qkv views removed outright) and 2 of the model's own (the
    kv-head expansion copies, kept)."""
    report = compiled_run("llama_block", "cleanpass").compiled.reports[-1]
    assert report.by_origin() == {"lowering": (8, 0), "model": (2, 2)}
    assert {d.origin for d in report.folded} == {"lowering"} and len(report.folded) == 2


def test_rotary_clones_kept_exactly_where_needed(compiled_run) -> None:  # noqa: ANN001
    """llama_block removes rotary's two q/k clones of strided views of qkv (the kernel writes
    qkv in place), folds the two input clones and keeps only the two kv-expansion copies; the
    unbind case removes q's clone and folds k's (k is returned: the caller would see its
    offset), and with the base read afterwards folds both."""
    report = compiled_run("llama_block", "cleanpass").compiled.reports[-1]
    assert [d.reason for d in report.kept] == [cleanpass.decisions.LAYOUT_DIFFERS] * 2
    assert all(d.source.startswith("expand") for d in report.kept)  # the kv-head expansion
    assert sum(d.source.startswith("getitem") for d in report.removed) == 2  # q and k, views of qkv
    assert len(report.folded) == 2
    assert all(d.source.startswith("arg") for d in report.folded)  # the non-donated inputs
    views = compiled_run("rotary_views", "cleanpass").compiled.reports[-1]
    assert (len(views.removed), len(views.folded), views.clones_after) == (1, 1, 0)
    base_read = compiled_run("rotary_views_base_read", "cleanpass").compiled.reports[-1]
    assert (len(base_read.removed), len(base_read.folded), base_read.clones_after) == (0, 2, 0)


def test_donated_inputs_reach_cleanpass_as_post_grad_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    """donated_chain's module has parameters and buffers (lifted as placeholders too): the
    positions given to cleanpass must be those of x and residual in the post-grad graph."""
    seen: list[tuple[list, tuple]] = []
    real = cleanpass.inductor.eliminate_clones_in_graph

    def spy(graph, donated=(), policy="sound", fold=True):  # noqa: ANN001, ANN202
        phs = [n for n in graph.nodes if n.op == "placeholder"]
        seen.append(([n.meta.get("val") for n in phs], tuple(donated)))
        return real(graph, donated=donated, policy=policy, fold=fold)

    monkeypatch.setattr(cleanpass.inductor, "eliminate_clones_in_graph", spy)  # what the pass calls
    wl = catalog.get("donated_chain")
    built = wl.build(wl.shapes("test")[1], torch.float32, "cpu")
    assert built.donated == (0, 1)
    assert len(list(built.fn.parameters())) > 0 and len(list(built.fn.buffers())) > 0
    compiled = pipeline.compile_fn(built.fn, policy="sound")
    inputs = built.fresh_inputs()
    built.mark_token_dims(inputs)
    out = compiled(*inputs)
    vals, donated = seen[-1]
    x, r = built.inputs
    assert len(donated) == 2
    for pos, real_input in zip(donated, (x, r)):
        assert vals[pos].dim() == 2 and vals[pos].shape[1] == real_input.shape[1]
    assert [i for i, v in enumerate(vals) if isinstance(v, torch.Tensor) and v.dim() == 2
            and v.shape[1] == x.shape[1] and v.shape[0] != x.shape[1]] == list(donated)
    ref = built.reference()
    for o, e in zip(out, ref):
        torch.testing.assert_close(o.double(), e, atol=1e-4, rtol=1e-4)


def test_one_token_rotary_writes_straight_into_qkv() -> None:
    """Decode (one token): q's view has its clone's layout and qkv's q part is dead after
    rotary, so the pass drops q's clone; k's view sits at an offset, which rotary's kernel
    takes, so k's goes too; results stay bit-exact with the no-pass compile."""
    wl = catalog.get("llama_block")
    s = wl.shapes("test")[0]
    one = catalog.Shape(1, s.hidden, s.model)
    with_pass, without = (selfcheck.compile_run(wl, one, v) for v in ("cleanpass", "lowered"))
    assert with_pass.clones == wl.expected_clones_for(one)["cleanpass"] == (10, 2)
    report = with_pass.compiled.reports[-1]
    assert len(report.removed) == 6 and len(report.folded) == 2
    assert with_pass.problems == [] and without.problems == []
    for a, b in zip(with_pass.outputs, without.outputs, strict=True):
        assert torch.equal(a, b)
