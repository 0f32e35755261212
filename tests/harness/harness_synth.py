"""Synthetic run directories in the results format (README, "Results"), for gate, baseline,
nightly and report tests (no compilation, no timing: fast and deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.run import variants

#: Each registered variant's bit-exact partner, from its registration.
PARTNER = {i.name: i.partner for i in variants.declarations() if i.partner}

H100 = "NVIDIA H100 80GB HBM3"
VARIANTS = ("eager", "native", "lowered", "vllm", "cleanpass", "ideal")
ELEM = {"bfloat16": 2, "float16": 2, "float32": 4}


def make_rows(
    *,
    device: str = "cuda",
    device_name: str = H100,
    workloads: tuple[str, ...] = ("rms_norm", "fused_add_rms_norm"),
    variants: tuple[str, ...] = ("lowered", "cleanpass"),
    tokens: tuple[int, ...] = (1, 32, 512),
    hidden: int = 4096,
    dtypes: tuple[str, ...] = ("bfloat16",),
    peak_gbps: float = 3000.0,
    suite: str = "smoke",
) -> pd.DataFrame:
    """Rows with plausible clone/kernel/byte counts and latencies (lowered keeps its clones)."""
    recs = []
    for wl in workloads:
        acts = 1 if wl == "rms_norm" else 2
        for dtype in dtypes:
            for t in tokens:
                tb = t * hidden * ELEM[dtype]
                model_bytes = (2 + 2 * (acts - 1)) * tb + hidden * ELEM[dtype]
                for var in variants:
                    clones_before = 0 if var in ("eager", "native", "ideal") else acts
                    clones_after = acts if var == "lowered" else 0
                    if var == "vllm":
                        clones_after = acts - 1
                    kernels = 1 + clones_after
                    nbytes = model_bytes + 2 * tb * clones_after
                    lat = 3.0 + 1.5 * clones_after + nbytes / (peak_gbps * 0.8 * 1e3)
                    gbps = model_bytes / (lat * 1e3)
                    recs.append(
                        dict(
                            workload=wl, variant=var, dtype=dtype, num_tokens=t, hidden=hidden,
                            device=device, clones_before=clones_before, clones_after=clones_after,
                            kernels=kernels, bytes_accessed=nbytes, model_bytes=model_bytes,
                            latency_us_p50=lat, latency_us_p20=lat * 0.98, latency_us_p80=lat * 1.03,
                            gbps=gbps, pct_of_peak=100 * gbps / peak_gbps,
                            max_abs_err=0.0 if var != "eager" else 0.0078,
                            bitwise_equal=True, bitwise_partner=PARTNER.get(var, ""),
                            ok=True, status="ok", error="", model="llama-3.1-8b",
                            device_name=device_name, suite=suite, compile_s=1.2, block_count=40,
                        )
                    )
    return pd.DataFrame.from_records(recs)


def make_samples(
    rows: pd.DataFrame,
    *,
    blocks: int = 40,
    sigma: float = 0.03,
    outlier_p: float = 0.05,
    run_shift_sd: float = 0.01,
    slowdown: dict[str, float] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Block medians: lognormal noise, occasional 1.2-2x outliers, a small shift per run.

    ``slowdown`` maps a variant name to a factor applied to all its samples (the injected
    regression)."""
    rng = np.random.default_rng(seed)
    shift = float(np.exp(rng.normal(0.0, run_shift_sd)))
    slowdown = slowdown or {}
    parts = []
    for rec in rows.to_dict("records"):
        base = rec["latency_us_p50"] * shift * slowdown.get(rec["variant"], 1.0)
        noise = rng.lognormal(0.0, sigma, size=blocks)
        outliers = rng.random(blocks) < outlier_p
        noise[outliers] *= rng.uniform(1.2, 2.0, size=int(outliers.sum()))
        part = pd.DataFrame({"block": np.arange(blocks), "sample_us": base * noise})
        for col in ("workload", "variant", "dtype", "num_tokens", "hidden", "device", "device_name"):
            part[col] = rec[col]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def make_env(device: str = "cuda", device_name: str = H100, utc: str = "2026-11-27T00:00:00Z",
             suite: str = "smoke", peak_gbps: float = 3000.0) -> dict:
    return {
        "device": device, "device_name": device_name, "peak_gbps_measured": peak_gbps,
        "torch": "2.13.0", "triton": "3.9.0", "python": "3.11", "commit": "abc1234",
        "dirty": False, "utc": utc, "suite": suite, "driver": "", "cuda": "", "clocks": "",
        "hostname": "synth", "cpu_count": 2, "vllm": None, "torch_num_threads": 1,
        "variants": [info.to_json() for info in variants.declarations()],
    }


def write_run(run_dir: Path, rows: pd.DataFrame, samples: pd.DataFrame | None, env: dict) -> Path:
    """Write a run directory the way the runner does (results, csv, env, samples)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(run_dir / "results.parquet", index=False)
    rows.to_csv(run_dir / "results.csv", index=False)
    (run_dir / "env.json").write_text(json.dumps(env, indent=1))
    if samples is not None:
        samples.to_parquet(run_dir / "samples.parquet", index=False)
    return run_dir


def synth_run(run_dir: Path, *, device: str = "cuda", device_name: str = H100, seed: int = 0,
              slowdown: dict[str, float] | None = None, utc: str = "2026-11-27T00:00:00Z",
              suite: str = "smoke", rows: pd.DataFrame | None = None, **row_kw) -> Path:
    """One call: rows + samples + env written to ``run_dir``."""
    if rows is None:
        rows = make_rows(device=device, device_name=device_name, suite=suite, **row_kw)
    samples = make_samples(rows, seed=seed, slowdown=slowdown)
    if slowdown:
        rows = rows.copy()
        for var, factor in slowdown.items():
            sel = rows["variant"] == var
            for col in ("latency_us_p50", "latency_us_p20", "latency_us_p80"):
                rows.loc[sel, col] = rows.loc[sel, col] * factor
    return write_run(run_dir, rows, samples, make_env(device, device_name, utc, suite))
