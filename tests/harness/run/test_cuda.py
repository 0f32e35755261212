"""CUDA-only: the smoke suite on the GPU (graph replays, cold L2, launch-inclusive samples)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from harness.run import api
from harness.store import results
from harness.run import suites, variants

REFERENCE = {i.name for i in variants.declarations() if i.reference}

pytestmark = [pytest.mark.cuda, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_smoke_on_cuda_times_graph_replays_and_launches(tmp_path):
    res = api.run(suite="smoke", device="cuda", workloads=["rms_norm", "donated_chain"],
                  out=tmp_path / "run", plan=suites.PLANS["test"])
    df = res.results
    assert (df["device"] == "cuda").all()
    bad = df[~df["ok"] & ~df["variant"].isin(REFERENCE)]
    assert bad.empty, bad[["workload", "variant", "error"]].to_string()
    timed = df[df["status"] == "ok"]
    assert timed["timer"].isin(["cuda_graph", "cuda_launch"]).all()
    assert (timed["latency_us_p50"] > 0).all() and (timed["launch_us_p50"] > 0).all()
    assert res.env["peak_gbps_measured"] > 100 and res.env["l2_bytes"]
    launch = pd.read_parquet(res.run_dir / "samples_launch.parquet")
    assert list(launch.columns) == results.SAMPLE_COLUMNS and len(launch)
