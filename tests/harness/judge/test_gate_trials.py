"""Repeated synthetic trials: the latency gate neither cries wolf nor misses a 10% slowdown.

Noise model (per block median): lognormal sigma 3%, 5% of blocks are 1.2-2x outliers, and
each run is shifted as a whole by a lognormal factor with sigma 1% (clocks, thermals).
40 blocks per row (what a GPU merge gate should record: with the 7 blocks of the default plan
the CI is wide and a 10% slowdown is only a WARN about half the time). 50 trials.
"""

from __future__ import annotations

import numpy as np

from harness.store.baseline import RunData
from harness.judge.gate import GateConfig, Level, gate
from harness.judge.stats import paired_blocks, ratio_ci
from tests.harness.harness_synth import make_env, make_rows, make_samples

TRIALS = 50
CONFIG = GateConfig(n_boot=1000)


def _side(rows, seed, slowdown=None) -> RunData:
    samples = make_samples(rows, seed=seed, slowdown=slowdown)
    return RunData(rows, samples, make_env(), f"trial-{seed}")


def _latency_levels(result) -> list[Level]:
    return [f.level for f in result.findings if f.metric == "latency_us_p50"]


def test_aa_comparison_passes_in_repeated_trials():
    """The same code measured twice (two runs): no REGRESSION in any of 50 trials."""
    rows = make_rows(variants=("cleanpass",), tokens=(32, 512, 2048))
    alarms = warns = 0
    for trial in range(TRIALS):
        res = gate(_side(rows, 2 * trial), _side(rows, 2 * trial + 1), CONFIG)
        levels = _latency_levels(res)
        alarms += res.exit_code != 0
        warns += levels.count(Level.WARN)
    assert alarms == 0
    assert warns <= 0.05 * TRIALS * len(rows)


def test_injected_ten_percent_slowdown_fails_in_nearly_all_trials():
    """A variant made 10% slower on purpose is caught in >= 90% of trials, row by row."""
    rows = make_rows(variants=("cleanpass",), tokens=(512, 2048, 8192))
    caught = total = 0
    for trial in range(TRIALS):
        res = gate(
            _side(rows, 1000 + 2 * trial),
            _side(rows, 1001 + 2 * trial, slowdown={"cleanpass": 1.10}),
            CONFIG,
        )
        caught += _latency_levels(res).count(Level.REGRESSION)
        total += len(rows)
    assert caught / total >= 0.90, f"detected {caught}/{total}"


def test_paired_aa_within_one_interleaved_run():
    """Two variants with identical code in one interleaved run: paired CI brackets 1."""
    rows = make_rows(variants=("lowered", "cleanpass"), tokens=(512,), workloads=("rms_norm",))
    rows["latency_us_p50"] = 20.0
    misses = 0
    for trial in range(TRIALS):
        s = make_samples(rows, seed=trial)
        a, b = (s[s.variant == v] for v in ("lowered", "cleanpass"))
        base, run = paired_blocks(a, b)
        ci = ratio_ci(base, run, paired=True, n_boot=1000, seed=trial)
        misses += ci.low > 1.05
    assert misses == 0


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(0, 0.05, 40), rng.lognormal(0.1, 0.05, 40)
    assert ratio_ci(a, b, seed=7) == ratio_ci(a, b, seed=7)
