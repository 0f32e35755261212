"""Timing logic on synthetic samples: quantiles, interleaving, reps, bandwidth arithmetic."""
from __future__ import annotations

import math

import pytest
import torch

from harness.run import cuda_timing
from harness.run import timing


def test_quantiles_interpolate_linearly_over_block_samples():
    q = timing.quantiles([10.0, 20.0, 30.0, 40.0, 50.0])
    assert (q.p20, q.p50, q.p80) == pytest.approx((18.0, 30.0, 42.0))


def test_quantiles_of_no_samples_are_nan_and_nan_samples_ignored():
    assert math.isnan(timing.quantiles([]).p50)
    assert timing.quantiles([float("nan"), 5.0]).p50 == 5.0


def test_block_order_rotates_so_each_variant_leads_once():
    names = ["a", "b", "c"]
    firsts = [timing.block_order(names, b)[0] for b in range(3)]
    assert firsts == ["a", "b", "c"]
    assert sorted(timing.block_order(names, 7)) == names


def test_interleave_gives_one_sample_per_block_in_rotating_order():
    calls = []

    def fn(name, value):
        def block():
            calls.append(name)
            return value
        return block

    got = timing.interleave({"a": fn("a", 1.0), "b": fn("b", 2.0)}, blocks=4)
    assert got == {"a": [1.0] * 4, "b": [2.0] * 4}
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_interleave_drops_a_failing_variant_and_keeps_the_others():
    n = {"k": 0}

    def flaky():
        n["k"] += 1
        if n["k"] == 2:
            raise RuntimeError("boom")
        return 3.0

    got = timing.interleave({"ok": lambda: 1.0, "bad": flaky}, blocks=3)
    assert got["ok"] == [1.0, 1.0, 1.0]
    assert got["bad"] == [3.0]


def test_reps_for_sizes_blocks_and_clamps():
    assert timing.reps_for(0.001, 0.02, 2, 100) == 20
    assert timing.reps_for(1.0, 0.02, 2, 100) == 2
    assert timing.reps_for(1e-9, 0.02, 2, 100) == 100
    assert timing.reps_for(float("nan"), 0.02, 2, 100) == 100


def test_cpu_block_runs_restore_before_every_call_outside_the_timed_region(monkeypatch):
    events = []
    clock = iter(range(0, 10**9, 1000))  # 1000 ns per clock read
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: next(clock))
    us = timing.cpu_block(lambda: events.append("call"), lambda: events.append("restore"), reps=3)
    assert events == ["restore", "call"] * 3
    assert us == pytest.approx(1.0)  # only call() lies between two clock reads


def test_copy_bandwidth_counts_read_plus_write():
    # 1 GB copied in 1 s moves 2 GB
    assert timing.copy_gbps(10**9, 1.0) == pytest.approx(2.0)
    assert math.isnan(timing.copy_gbps(10, 0.0))


def test_cpu_copy_bandwidth_is_positive():
    assert timing.measure_cpu_copy_gbps(nbytes=1 << 20, reps=2) > 0


def test_l2_flush_buffer_is_larger_than_l2_with_a_floor():
    big_l2 = 128 * 2**20
    assert cuda_timing.l2_flush_bytes(big_l2) == 4 * big_l2
    assert cuda_timing.l2_flush_bytes(50 * 2**20) == cuda_timing.MIN_FLUSH_BYTES  # H100: 50 MB
    assert cuda_timing.l2_flush_bytes(None) == cuda_timing.MIN_FLUSH_BYTES
    assert cuda_timing.l2_flush_bytes(2**20) == cuda_timing.MIN_FLUSH_BYTES


def test_event_milliseconds_become_microseconds():
    assert cuda_timing.events_to_us([0.5, 0.002]) == pytest.approx([500.0, 2.0])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_replay_timing_and_restore_on_cuda():
    x = torch.randn(1 << 20, device="cuda")
    pristine = x.clone()

    def call():
        x.mul_(2)

    def restore():
        x.copy_(pristine)

    graph = cuda_timing.capture_graph(call, restore)
    flush = cuda_timing.L2Flusher(x.device)
    us = cuda_timing.event_block(graph.replay, restore, flush, reps=5)
    assert us > 0
    torch.testing.assert_close(x, pristine * 2)  # restored before each replay: one doubling
    assert cuda_timing.measure_copy_gbps(x.device, nbytes=64 << 20, reps=3) > 10


def test_slow_cases_get_fewer_blocks_but_never_below_the_floor():
    from harness.run.suites import TimingPlan

    plan = TimingPlan(blocks=7, target_block_s=0.01, min_reps=1, max_reps=10, launch_blocks=2,
                      case_budget_s=10.0, min_blocks=3)
    assert plan.blocks_for(0.1) == 7      # fast case: every block
    assert plan.blocks_for(2.0) == 5      # 10 s budget / 2 s per block
    assert plan.blocks_for(60.0) == 3     # very slow: the floor
    assert plan.blocks_for(0.0) == 7
