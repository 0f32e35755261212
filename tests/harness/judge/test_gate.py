"""Gate rules on synthetic run directories: exact rules, latency bootstrap, input errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.store.baseline import InputError, RunData, load_run, write_baseline
from harness.judge.gate import GateConfig, Level, exact_findings, gate
from tests.harness.cli_calls import call
from tests.harness.harness_synth import make_env, make_rows, make_samples, synth_run, write_run


def _baseline(tmp_path: Path, **kw) -> Path:
    run = synth_run(tmp_path / "base_run", seed=1, **kw)
    return write_baseline(load_run(run), tmp_path / "baseline.parquet")


def _cli(baseline: Path, run: Path, *extra: str) -> tuple[int, list[str]]:
    return call("gate", "--baseline", baseline, "--run", run, *extra)


def _edit_run(tmp_path: Path, edit, device: str = "cuda") -> Path:
    rows = make_rows(device=device)
    rows = edit(rows) if edit else rows
    samples = make_samples(rows, seed=2)
    return write_run(tmp_path / "run", rows, samples, make_env(device=device))


def _sel(rows: pd.DataFrame, variant="cleanpass", workload="rms_norm", tokens=32):
    return (rows.variant == variant) & (rows.workload == workload) & (rows.num_tokens == tokens)


def test_identical_run_passes(tmp_path):
    base = _baseline(tmp_path)
    code, lines = _cli(base, _edit_run(tmp_path, None))
    assert code == 0, lines
    assert lines[-1].startswith("gate PASS")


def test_clone_left_behind_fails_with_readable_message(tmp_path):
    base = _baseline(tmp_path)

    def leave_clone(rows):
        rows.loc[_sel(rows), "clones_after"] = 1
        return rows

    code, lines = _cli(base, _edit_run(tmp_path, leave_clone))
    assert code == 1
    assert (
        "REGRESSION cleanpass rms_norm bf16 T=32 H=4096: clones_after 0 -> 1 "
        "(the pass left a clone it used to remove)"
    ) in lines


@pytest.mark.parametrize("metric", ["clones_after", "kernels", "bytes_accessed"])
def test_growing_exact_metric_fails(tmp_path, metric):
    base = _baseline(tmp_path)

    def grow(rows):
        rows.loc[_sel(rows), metric] = rows.loc[_sel(rows), metric] + 1
        return rows

    code, lines = _cli(base, _edit_run(tmp_path, grow))
    assert code == 1
    bad = [l for l in lines if l.startswith("REGRESSION")]
    assert len(bad) == 1 and f": {metric} " in bad[0] and "T=32" in bad[0]


@pytest.mark.parametrize("metric", ["clones_after", "kernels", "bytes_accessed"])
def test_shrinking_exact_metric_passes(tmp_path, metric):
    base = _baseline(tmp_path)

    def shrink(rows):
        sel = _sel(rows, variant="lowered")
        rows.loc[sel, metric] = rows.loc[sel, metric] - 1
        return rows

    assert _cli(base, _edit_run(tmp_path, shrink))[0] == 0


def _with_copies(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    rows["copies"] = (rows["clones_after"] > 0).astype(int)  # lowered's clones fuse into one copy kernel
    return rows


def test_copies_growing_fails_like_a_clone_left_behind(tmp_path):
    rows = _with_copies(make_rows())
    base = write_baseline(load_run(synth_run(tmp_path / "base_run", seed=1, rows=rows)), tmp_path / "b.parquet")

    def copy_more(rows):
        rows = _with_copies(rows)
        rows.loc[_sel(rows), "copies"] = 2  # e.g. Inductor copies a view in and back
        return rows

    code, lines = _cli(base, _edit_run(tmp_path, copy_more))
    bad = [l for l in lines if l.startswith("REGRESSION")]
    assert code == 1 and len(bad) == 1
    assert "cleanpass rms_norm bf16 T=32 H=4096: copies 0 -> 2 (the generated code copies more" in bad[0]


def test_a_baseline_written_before_copies_gates_nothing_on_it(tmp_path):
    """Old baselines (the committed CPU one included) have no ``copies``: no finding, either way."""
    base = _baseline(tmp_path)
    assert _cli(base, _edit_run(tmp_path, lambda rows: _with_copies(rows).assign(copies=7)))[0] == 0


@pytest.mark.parametrize("metric", ["ok", "bitwise_equal"])
def test_flag_turning_false_fails(tmp_path, metric):
    base = _baseline(tmp_path)

    def turn_false(rows):
        rows.loc[_sel(rows), metric] = False
        if metric == "ok":
            rows.loc[_sel(rows), "error"] = "max_abs_err 0.5 > atol 0.01"
        return rows

    code, lines = _cli(base, _edit_run(tmp_path, turn_false))
    assert code == 1
    bad = [l for l in lines if l.startswith("REGRESSION")]
    assert len(bad) == 1 and f": {metric} true -> false" in bad[0]
    if metric == "ok":
        assert "max_abs_err 0.5" in bad[0]


def test_skipped_rows_are_ignored(tmp_path):
    base = _baseline(tmp_path)

    def skip_and_break(rows):
        sel = _sel(rows)
        rows.loc[sel, "status"] = "skipped"
        rows.loc[sel, "error"] = "skipped: triton not available"
        rows.loc[sel, "clones_after"] = 5
        rows.loc[sel, "ok"] = False
        return rows

    code, lines = _cli(base, _edit_run(tmp_path, skip_and_break))
    assert code == 0, lines
    assert any(l.startswith("NOTE") and "skipped" in l for l in lines)


def test_missing_run_row_fails_and_new_row_is_a_note(tmp_path):
    base = _baseline(tmp_path)
    code, lines = _cli(base, _edit_run(tmp_path, lambda r: r[~_sel(r)]))
    assert code == 1
    assert any("row missing from the run" in l and "T=32" in l for l in lines)
    code, lines = _cli(base, tmp_path / "run", "--partial")
    assert code == 0
    assert any(l.startswith("NOTE") and "row missing from the run" in l for l in lines)

    extra = make_rows(tokens=(1, 32, 512, 2048))
    run = write_run(tmp_path / "run2", extra, make_samples(extra), make_env())
    code, lines = _cli(base, run)
    assert code == 0
    assert any(l.startswith("NOTE") and "new row" in l and "T=2048" in l for l in lines)


def test_missing_files_are_unusable(tmp_path):
    base = _baseline(tmp_path)
    assert _cli(tmp_path / "nope.parquet", _edit_run(tmp_path, None))[0] == 2
    assert _cli(base, tmp_path / "no_such_run")[0] == 2
    run = _edit_run(tmp_path, None)
    (run / "env.json").unlink()
    code, lines = _cli(base, run)
    assert code == 2 and "env.json" in lines[0]


def test_wrong_schema_is_unusable(tmp_path):
    base = _baseline(tmp_path)
    code, lines = _cli(base, _edit_run(tmp_path, lambda r: r.drop(columns=["clones_after"])))
    assert code == 2 and "clones_after" in lines[0]
    # a plain results.parquet is not a baseline file
    code, lines = _cli(tmp_path / "run" / "results.parquet", tmp_path / "run")
    assert code == 2 and "not a cleanpass baseline" in lines[0]


def test_different_gpu_model_is_unusable(tmp_path):
    base = _baseline(tmp_path)
    run = synth_run(tmp_path / "h200", device_name="NVIDIA H200")
    code, lines = _cli(base, run)
    assert code == 2 and "device model differs" in lines[0]


def test_cpu_against_cuda_is_unusable(tmp_path):
    base = _baseline(tmp_path)
    run = synth_run(tmp_path / "cpu", device="cpu", device_name="x86_64")
    assert _cli(base, run)[0] == 2


def test_cpu_gates_exactly_but_not_latency(tmp_path):
    base = _baseline(tmp_path, device="cpu", device_name="Intel Xeon")
    run = synth_run(tmp_path / "cpu", device="cpu", device_name="AMD EPYC", slowdown={"cleanpass": 1.5})
    code, lines = _cli(base, run)
    assert code == 0, lines
    assert "latency not gated" in lines[-1]
    assert any("CPU model differs" in l for l in lines)


def test_latency_regression_fails_and_reports_ci(tmp_path):
    base = _baseline(tmp_path)
    run = synth_run(tmp_path / "slow", seed=3, slowdown={"cleanpass": 1.5})
    code, lines = _cli(base, run)
    assert code == 1
    bad = [l for l in lines if l.startswith("REGRESSION") and ": latency_us_p50 " in l]
    assert len(bad) == 6  # every cleanpass row: 2 workloads x 3 token counts
    assert all("95% CI" in l for l in bad)


def test_point_estimate_only_above_limit_warns():
    """Few, very noisy blocks: the point is above 1.05 but the CI's lower bound is not."""
    rows = make_rows(tokens=(512,), workloads=("rms_norm",), variants=("cleanpass",))
    env = make_env()
    base_s = make_samples(rows, blocks=8, sigma=0.15, seed=10, run_shift_sd=0.0)
    run_s = base_s.copy()
    run_s["sample_us"] = run_s["sample_us"] * 1.08
    base = _rundata(rows, base_s, env)
    res = gate(base, _rundata(rows, run_s, env), GateConfig(floor_us=0.0))
    assert [f.level for f in res.findings] == [Level.WARN]
    assert res.exit_code == 0
    assert res.latency[0].low <= 1.05 < res.latency[0].point


def test_absolute_floor_spares_tiny_kernels():
    """A 20% slowdown of a 1 us kernel is 0.2 us: under the 0.25 us floor, not a regression."""
    rows = make_rows(tokens=(1,), workloads=("rms_norm",), variants=("cleanpass",))
    rows["latency_us_p50"] = 1.0
    env = make_env()
    base_s = make_samples(rows, seed=1, sigma=0.01, outlier_p=0, run_shift_sd=0)
    run_s = base_s.copy()
    run_s["sample_us"] *= 1.2
    assert gate(_rundata(rows, base_s, env), _rundata(rows, run_s, env)).exit_code == 0
    strict = GateConfig(floor_us=0.05)
    assert gate(_rundata(rows, base_s, env), _rundata(rows, run_s, env), strict).exit_code == 1


def test_thresholds_are_configurable(tmp_path):
    base = _baseline(tmp_path)
    run = synth_run(tmp_path / "slow", seed=3, slowdown={"cleanpass": 1.25})
    assert _cli(base, run, "--threshold", "0.5")[0] == 0
    assert _cli(base, run, "--floor-us", "1000")[0] == 0


def test_too_few_blocks_is_a_note_not_a_verdict():
    rows = make_rows(tokens=(32,), workloads=("rms_norm",), variants=("cleanpass",))
    env = make_env()
    s = make_samples(rows, blocks=3)
    res = gate(_rundata(rows, s, env), _rundata(rows, s, env))
    assert res.exit_code == 0
    assert any("latency not gated" in f.metric for f in res.findings)


def test_gate_is_pure_and_raises_input_error():
    rows = make_rows()
    with pytest.raises(InputError):
        gate(_rundata(rows, make_samples(rows), make_env()),
             _rundata(rows, make_samples(rows), make_env(device_name="NVIDIA H200")))


def _rundata(rows, samples, env):
    return RunData(rows.reset_index(drop=True), samples, env, "mem")


def test_latency_regression_needs_the_rerun_to_agree(tmp_path):
    base = _baseline(tmp_path)
    slow = synth_run(tmp_path / "slow", seed=3, slowdown={"cleanpass": 1.5})
    slow_again = synth_run(tmp_path / "slow2", seed=4, slowdown={"cleanpass": 1.5})
    fine = synth_run(tmp_path / "fine", seed=5)
    assert _cli(base, slow, "--confirm-run", str(slow_again))[0] == 1
    code, lines = _cli(base, slow, "--confirm-run", str(fine))
    assert code == 0
    assert any(l.startswith("WARN") and "the rerun did not confirm it" in l for l in lines)


def test_exact_bytes_are_gated_only_against_a_baseline_that_has_them():
    key = ("rms_norm", "cleanpass", "float32", 32, 4096, "cpu")
    old_baseline = {"clones_after": 0, "kernels": 1, "bytes_accessed": 100, "ok": True}
    run = dict(old_baseline, bytes_exact=80)
    assert exact_findings(key, old_baseline, run) == []
    grown = exact_findings(key, dict(old_baseline, bytes_exact=70), run)
    assert [(f.level, f.metric) for f in grown] == [(Level.REGRESSION, "bytes_exact")]
