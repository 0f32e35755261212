"""scripts/pass_time_vs_vllm.py: its graph builders and its alternating timing loop run, and
its table says what it measured. No timing is asserted (the ratio is a benchmark's, not a
test's). Without vLLM (plain .venv) the real arm is absent with its reason; in .venv-peer
both arms run here."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harness.run import vllm_real
from workloads import hf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import pass_time_vs_vllm as script  # noqa: E402


def test_arms_are_the_ones_this_environment_can_run():
    arms, missing = script.arms()
    assert "cleanpass" in arms
    assert ("vllm" in arms) == (vllm_real.unavailable() is None)
    assert missing == vllm_real.unavailable()


def test_chain_is_timed_in_alternating_rounds_on_fresh_copies():
    case = script.chain_case(40)
    assert (case.nodes, case.clones, case.donated) == (44, 20, (0, 1))  # 3 inputs, output
    arms, _ = script.arms()
    calls: list[str] = []

    def counting(name):
        def run(graph, donated):
            calls.append(name)
            assert script.count_clones(graph) == case.clones  # a fresh copy every call
            return arms[name](graph, donated)
        return run

    timing = script.time_case(case, {name: counting(name) for name in arms}, rounds=3, warmup=1)
    assert len(calls) == 4 * len(arms)
    if len(arms) == 2:  # who goes first alternates
        assert calls[0] != calls[2]
    assert all(len(found) == 3 and all(s.cpu > 0 and s.wall > 0 for s in found)
               for found in timing.seconds.values())
    assert timing.clones_after["cleanpass"] == 0  # donated chain: every clone goes
    assert case.clones == 20  # the template is never edited
    lines = list(script.table([timing]))
    assert lines[1].startswith("norm chain, 40 nodes") and len(lines) == 2
    assert (timing.ratio() is None) == ("vllm" not in arms)


def test_an_arm_that_changes_its_outcome_between_rounds_is_refused():
    case = script.chain_case(20)
    outcomes = iter([False, True])

    def flaky(graph, donated):
        if next(outcomes):
            script.cleanpass_direct(graph, donated)
        return script.Seconds(1e-3, 1e-3)

    with pytest.raises(AssertionError, match="flaky left 0 clones"):
        script.time_case(case, {"flaky": flaky}, rounds=1, warmup=1)


def test_main_prints_the_machine_and_a_row_per_graph(capsys):
    assert script.main(["--sizes", "40", "--rounds", "1", "--no-llama"]) == 0
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and "norm chain, 40 nodes" in out
    assert ("vLLM's pass: skipped" in out) == (vllm_real.unavailable() is not None)


@pytest.mark.slow
@pytest.mark.skipif(hf.unavailable() is not None, reason=str(hf.unavailable()))
def test_llama_graph_is_the_post_grad_graph_with_its_clones():
    case = script.llama_case(1)
    assert case.clones == 7  # 6 per layer + the final norm's (tests/workloads/test_wl_scale.py)
    assert case.nodes > 5 * case.clones  # a model graph, not a chain
    arms, _ = script.arms()
    timing = script.time_case(case, arms, rounds=1, warmup=0)
    assert timing.clones_after["cleanpass"] == 0
