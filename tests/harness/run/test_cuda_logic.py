"""The CUDA timing orchestration, run on the CPU with the device calls faked.

No GPU here: this checks the bookkeeping around graph capture (fallback to launch timing
when a capture fails, blocks, reps, launch-inclusive samples, the timer column) with the real
rms_norm workload built on the CPU. The device calls themselves are covered by the
``cuda``-marked tests.
"""
from __future__ import annotations

import pytest
import torch

from harness.run import api
from harness.run import cuda_runner
from harness.run import cuda_timing
from harness.run import suites


class _OnCpu:
    """The real workload, built on the CPU whatever device is asked for."""

    def __init__(self, wl):
        self._wl = wl

    def __getattr__(self, name):
        return getattr(self._wl, name)

    def build(self, shape, dtype, device):
        return self._wl.build(shape, dtype, "cpu")


@pytest.fixture()
def fake_cuda(monkeypatch):
    calls = {"capture": [], "event": 0}

    class Graph:
        def __init__(self, call):
            self.replay = call

    def capture(call, restore, warmup=2):
        calls["capture"].append(call)
        if len(calls["capture"]) == 2:  # the second variant cannot be captured
            raise RuntimeError("operation not permitted when stream is capturing")
        return Graph(call)

    def event_block(run, restore, flush, reps):
        calls["event"] += 1
        for _ in range(reps):
            if restore is not None:
                restore()
            flush()
            run()
        return 5.0

    monkeypatch.setattr(cuda_timing, "capture_graph", capture)
    monkeypatch.setattr(cuda_timing, "event_block", event_block)
    monkeypatch.setattr(cuda_timing, "L2Flusher", lambda device: (lambda: None))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr("harness.run.env.collect_env", lambda device, suite, peak, repo=".": {
        "device": device, "device_name": "Fake GPU", "peak_gbps_measured": peak})
    monkeypatch.setattr("harness.run.runner.measure_peak_gbps", lambda device: 3000.0)
    return calls


def test_cuda_path_times_graphs_falls_back_to_launches_and_keeps_launch_samples(tmp_path, fake_cuda):
    cat = {"rms_norm": _OnCpu(api.load_workloads()["rms_norm"])}
    plan = suites.PLANS["test"]
    res = api.run(suite="smoke", device="cuda", workloads=["rms_norm"], tokens=[4], variants=["eager", "ideal"],
                  out=tmp_path / "run", plan=plan, catalog=cat)
    df = res.results.set_index("variant")
    assert df.loc["eager", "timer"] == "cuda_graph" and df.loc["ideal", "timer"] == "cuda_launch"
    assert (df["latency_us_p50"] == 5.0).all() and (df["launch_us_p50"] == 5.0).all()
    assert (df["block_count"] == plan.blocks).all() and df["ok"].all()
    assert df.loc["eager", "pct_of_peak"] > 0
    launch = (res.run_dir / "samples_launch.parquet")
    assert launch.is_file()
    # 2 calibration + blocks x 2 variants (graph) + launch_blocks x 2 variants
    assert fake_cuda["event"] == 2 + 2 * plan.blocks + 2 * plan.launch_blocks
    assert cuda_runner.time_variants.__doc__
