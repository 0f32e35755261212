"""Gate rule 3 across machines: contracts fail anywhere, machine observations never do.

The committed CPU baseline is gated against a copy of itself that looks as if it ran on a CPU
of another model: its device name is rewritten and the bit-equality of every row that promises
nothing (eager, native, ideal against lowered) is flipped, as other vector units do. That must
pass. Breaking a contract in the same copy (a ``cleanpass`` row losing bit-equality with
``lowered``, a clone left behind) must fail.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.judge.gate import EXIT_PASS, EXIT_REGRESSION, Level, gate
from harness.store.baseline import RunData, load_baseline
from tests.harness.harness_synth import PARTNER

BASELINE = Path(__file__).resolve().parents[3] / "results" / "baselines" / "cpu.parquet"
#: A CPU model no baseline was measured on (a real name could be the baseline's own: the
#: committed one was refreshed on an Intel Xeon VM, earlier ones on AMD EPYC VMs).
OTHER_CPU = "Simulated CPU model (not the baseline's)"


@pytest.fixture(scope="module")
def baseline() -> RunData:
    return load_baseline(BASELINE)


def _as_run_on(base: RunData, device_name: str) -> RunData:
    """The baseline's rows as a current run on ``device_name`` would write them."""
    rows = base.rows.copy()
    rows["device_name"] = device_name
    # a current run records each row's promise; derive it from the runner's own table
    rows["bitwise_partner"] = rows["variant"].map(PARTNER).fillna("")
    env = dict(base.env, device_name=device_name)
    return RunData(rows, base.samples.copy(), env, "simulated-run")


def _flip(run: RunData, mask: pd.Series, column: str = "bitwise_equal") -> int:
    run.rows.loc[mask, column] = ~run.rows.loc[mask, column].astype(bool)
    return int(mask.sum())


def _unpromised_true(run: RunData) -> pd.Series:
    rows = run.rows
    return (rows["bitwise_partner"] == "") & rows["bitwise_equal"].fillna(False).astype(bool)


def test_other_cpu_model_with_flipped_observations_passes(baseline):
    assert baseline.device_name != OTHER_CPU
    run = _as_run_on(baseline, OTHER_CPU)
    flipped = _flip(run, _unpromised_true(run))
    assert flipped >= 4, "the baseline must hold observations to flip (eager/ideal rows)"
    result = gate(baseline, run)
    assert result.exit_code == EXIT_PASS, [f.line() for f in result.regressions]
    notes = [f for f in result.findings if f.metric == "bitwise_equal"]
    assert len(notes) == flipped and all(f.level is Level.NOTE for f in notes)


def test_same_cpu_model_reports_observation_flips_as_warnings(baseline):
    run = _as_run_on(baseline, baseline.device_name)
    flipped = _flip(run, _unpromised_true(run))
    result = gate(baseline, run)
    assert result.exit_code == EXIT_PASS
    warns = [f for f in result.findings if f.metric == "bitwise_equal"]
    assert len(warns) == flipped and all(f.level is Level.WARN for f in warns)


def test_cleanpass_losing_bit_equality_fails_on_any_cpu(baseline):
    run = _as_run_on(baseline, OTHER_CPU)
    _flip(run, _unpromised_true(run))
    target = (run.rows["variant"] == "cleanpass") & run.rows["bitwise_equal"].fillna(False).astype(bool)
    first = target[target].index[:1]
    run.rows.loc[first, "bitwise_equal"] = False
    result = gate(baseline, run)
    assert result.exit_code == EXIT_REGRESSION
    (finding,) = result.regressions
    assert finding.metric == "bitwise_equal" and finding.key[1] == "cleanpass"


def test_a_clone_left_behind_fails_on_any_cpu(baseline):
    run = _as_run_on(baseline, OTHER_CPU)
    row = run.rows.index[run.rows["variant"] == "cleanpass"][0]
    run.rows.loc[row, "clones_after"] = run.rows.loc[row, "clones_after"] + 1
    result = gate(baseline, run)
    assert result.exit_code == EXIT_REGRESSION
    assert [f.metric for f in result.regressions] == ["clones_after"]


def test_skipped_rows_are_recognised_by_status_not_by_wording(baseline):
    """A skipped row whose error text never says 'skip' is still skipped; a failed row whose
    error happens to contain the word is still gated."""
    run = _as_run_on(baseline, baseline.device_name)
    rows = run.rows
    first, second = rows.index[rows["variant"] == "cleanpass"][:2]
    rows.loc[first, ["status", "ok", "error"]] = ["skipped", True, "no triton here"]
    rows.loc[second, ["status", "ok", "error"]] = ["fail", False, "kernel skipped a tile"]
    result = gate(baseline, run)
    by_key = {tuple(rows.loc[i, c] for c in ("workload", "variant", "dtype", "num_tokens", "hidden", "device")): i
              for i in (first, second)}
    skipped = [f for f in result.findings if f.metric == "skipped in the run"]
    assert [by_key.get(f.key) for f in skipped] == [first]
    failed = [f for f in result.regressions if f.metric == "ok"]
    assert [by_key.get(f.key) for f in failed] == [second]
