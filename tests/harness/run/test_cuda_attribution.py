"""CUDA-only: kernel attribution from device kernel times, peak memory, and the kernel suite
timed against the measured copy bandwidth (run first thing by scripts/gpu_check.sh)."""
from __future__ import annotations

import pytest
import torch

from harness.run import api, suites
from harness.store import results

pytestmark = [pytest.mark.cuda, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_device_kernels_attribute_the_removed_copies(tmp_path):
    run = api.run(suite="nightly", device="cuda", workloads=["donated_chain"], dtypes=["bfloat16"],
                  tokens=[512], variants=["lowered", "cleanpass"], out=tmp_path / "run",
                  plan=suites.PLANS["test"], attribution=True)
    per = results.read_attribution(run.run_dir).set_index(["variant", "kernel_class"])
    assert per.loc[("lowered", "copy"), "kernels"] >= 1
    assert per.loc[("cleanpass", "copy"), "kernels"] < per.loc[("lowered", "copy"), "kernels"]
    assert per.loc[("lowered", "matmul"), "kernels"] >= 1 and per.loc[("lowered", "matmul"), "us"] > 0
    rows = run.results.set_index("variant")
    assert rows.loc["lowered", "copy_us"] > rows.loc["cleanpass", "copy_us"]
    assert (run.results["peak_mem_bytes"] > 0).all()


def test_kernel_suite_times_each_kernel_against_the_copy_roof(tmp_path):
    run = api.run(suite="kernels", device="cuda", dtypes=["bfloat16"], tokens=[4096], out=tmp_path / "k")
    df = run.results
    ran = df[df["status"] == results.Status.OK.value]
    assert len(ran) and (df["status"] != results.Status.FAIL.value).all(), df.loc[~df["ok"], "error"].tolist()
    assert (ran["timer"] == "cuda_event").all() and (ran["latency_us_p50"] > 0).all()
    # a kernel cannot beat the device copy by much (bytes counted once each way, like the copy)
    assert ((ran["pct_of_peak"] > 1) & (ran["pct_of_peak"] < 130)).all(), ran[["variant", "pct_of_peak"]]
