"""The pipeline pass: stage order, uuid() coverage, one compile per arm."""
from __future__ import annotations

import pytest
import torch

from workloads import catalog, donation, pipeline


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
        built.mark_token_dims(ins)
        outs[p] = c(*ins)
        assert len(c.reports) == 1
    assert arms[None].reports[0].clones_after == 6 and arms["sound"].reports[0].clones_after == 0
    assert arms["sound"].reports[0] is arms["sound"].post.clean.reports[0]  # the pass's own report
    for a, b in zip(outs[None], outs["sound"]):
        assert torch.equal(a, b)


class _RecordingPass:
    """An external clone-elimination stage: our vllm policy, recording what it was given."""

    def __init__(self, key: str) -> None:
        self.key, self.donated = key, []

    def __call__(self, graph, donated):  # noqa: ANN001
        import cleanpass

        self.donated.append(donated)
        return cleanpass.eliminate_clones_in_graph(graph, donated, "vllm")

    def uuid(self) -> str:
        return self.key


def test_external_clone_elimination_stage_and_uuid() -> None:
    """A pass from elsewhere (vLLM's own, in the harness) runs after lowering and keys the cache."""
    pytest.importorskip("cleanpass")
    first, second = pipeline.PipelinePass(_RecordingPass("a")), pipeline.PipelinePass(_RecordingPass("b"))
    assert [s for s, _ in first.stages] == ["lowering", "cleanpass"]
    assert first.uuid() != second.uuid()
    assert first.uuid() == pipeline.PipelinePass(_RecordingPass("a")).uuid()
    assert first.uuid() not in {pipeline.PipelinePass(p).uuid() for p in (None, "vllm", "sound")}


@pytest.mark.slow
def test_external_clone_elimination_gets_the_donated_inputs() -> None:
    wl = catalog.get("donated_chain")
    built = wl.build(wl.shapes("test")[0], torch.float32, "cpu")
    stage = _RecordingPass("recording")
    compiled = pipeline.compile_fn(built.fn, policy=stage)
    ins = built.fresh_inputs()
    built.mark_token_dims(ins)
    compiled(*ins)
    assert stage.donated and stage.donated[0] == compiled.donated[0] != ()
    assert compiled.reports[0].clones_after == wl.expected_clones["vllm"][1]


def test_the_pipeline_runs_the_pass_users_adopt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clone-elimination stage is a cleanpass.CloneEliminationPass, and its key is the
    pipeline's: a change the pass's uuid() sees invalidates the pipeline's cache entry too."""
    import cleanpass

    assert pipeline.PipelinePass(None).clean is None
    post = pipeline.PipelinePass("vllm")
    assert isinstance(post.clean, cleanpass.CloneEliminationPass) and post.clean.policy == "vllm"
    before = post.uuid()
    monkeypatch.setattr(post.clean, "uuid", lambda: "another pass build")
    assert post.uuid() != before
    assert [a.name for a in pipeline.ARMS] == ["lowered", "vllm", "cleanpass"]
    assert pipeline.arm("cleanpass").policy == "sound" and pipeline.arm("vllm").reference


def test_graph_log_replaces_a_restarted_trace_and_appends_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from workloads import compat

    log = donation.GraphLog()
    for tid, value in ((("0/0", 0), "stale"), (("0/0", 1), "a"), (("0/0", 1), "a-backward"),
                       (("0/1", 0), "b"), (("0/0", 0), "after-reset")):
        monkeypatch.setattr(compat, "trace_id", lambda tid=tid: tid)
        log.record(value, key="bw" if value.endswith("backward") else None)
    assert log.entries == ["a", "a-backward", "b", "after-reset"]
