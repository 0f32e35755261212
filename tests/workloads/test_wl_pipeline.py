"""The pipeline pass: stage order, uuid() coverage, one compile per arm."""
from __future__ import annotations

import pytest
import torch

from workloads import catalog, donation, pipeline, selfcheck


def test_stages_lowering_then_cleanpass() -> None:
    assert [s for s, _ in pipeline.PipelinePass(None).stages] == ["lowering"]
    assert [s for s, _ in pipeline.PipelinePass("sound").stages] == ["lowering", "cleanpass"]


def test_uuid_covers_policy_and_providers() -> None:
    pytest.importorskip("cleanpass")
    ids = {pipeline.PipelinePass(p, prov).uuid()
           for p in (None, "vllm", "sound") for prov in (None, ("torch",), ("triton", "torch"))}
    assert len(ids) == 9 and all(ids)
    assert pipeline.PipelinePass("sound").uuid() == pipeline.PipelinePass("sound").uuid()
    assert donation.DonationPass().uuid()


def test_uuid_covers_source(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    src = tmp_path / "extra.py"
    src.write_text("A = 1\n")
    files = pipeline._source_files() + [str(src)]
    monkeypatch.setattr(pipeline, "_source_files", lambda: list(files))
    before = pipeline.PipelinePass(None).uuid()
    src.write_text("A = 2\n")
    assert pipeline.PipelinePass(None).uuid() != before


@pytest.mark.slow
def test_same_module_two_arms_compile_separately() -> None:
    """Each compile_fn gets its own Dynamo entry, so A/B arms never share compiled code."""
    wl = catalog.get("norm_chain")
    built = wl.build(wl.shapes("test")[0], torch.float32, "cpu")
    arms = {p: pipeline.compile_fn(built.fn, policy=p) for p in (None, "sound")}
    outs = {}
    for p, c in arms.items():
        ins = built.fresh_inputs()
        selfcheck.mark_dynamic(built, ins)
        outs[p] = c(*ins)
        assert len(c.reports) == 1
    assert arms[None].reports[0].clones_after == 6 and arms["sound"].reports[0].clones_after == 2
    for a, b in zip(outs[None], outs["sound"]):
        assert torch.equal(a, b)
