"""A pytest-benchmark-shaped JSON view of a run, for dashboards that already read that format.

Each timed row becomes one benchmark: ``group`` = workload, ``name`` = the test-id style
``workload[model-hidden-tokens-dtype-variant]``, ``stats`` in seconds over the block samples.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _stats(us: np.ndarray) -> dict[str, Any]:
    s = us / 1e6
    q1, med, q3 = np.percentile(s, [25, 50, 75])
    mean = float(s.mean())
    return {
        "min": float(s.min()), "max": float(s.max()), "mean": mean,
        "stddev": float(s.std(ddof=1)) if s.size > 1 else 0.0,
        "median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
        "rounds": int(s.size), "iterations": 1, "ops": (1.0 / mean) if mean > 0 else 0.0,
        "total": float(s.sum()), "outliers": "0;0", "iqr_outliers": 0, "stddev_outliers": 0,
        "ld15iqr": float(s.min()), "hd15iqr": float(s.max()), "data": [float(x) for x in s],
    }


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def benchmark_json(results: pd.DataFrame, samples: pd.DataFrame, env: dict) -> dict[str, Any]:
    """Build the pytest-benchmark document (``machine_info``, ``commit_info``, ``benchmarks``)."""
    keys = ["workload", "variant", "dtype", "num_tokens", "hidden"]
    by_key = {k: g["sample_us"].to_numpy(float) for k, g in samples.groupby(keys)} if len(samples) else {}
    benches = []
    for r in results.to_dict("records"):
        us = by_key.get(tuple(r[k] for k in keys))
        if us is None or us.size == 0:
            continue
        params = {"model": r["model"], "hidden": int(r["hidden"]), "num_tokens": int(r["num_tokens"]),
                  "dtype": r["dtype"], "variant": r["variant"]}
        pid = f"{r['model'] or 'x'}-{r['hidden']}-{r['num_tokens']}-{r['dtype']}-{r['variant']}"
        benches.append({
            "group": r["workload"],
            "name": f"{r['workload']}[{pid}]",
            "fullname": f"harness/{r['workload']}[{pid}]",
            "params": params, "param": pid,
            "stats": _stats(us),
            "extra_info": {k: _clean(v) for k, v in r.items() if k not in params},
            "options": {"timer": r.get("timer", ""), "min_rounds": int(r["block_count"])},
        })
    return {
        "machine_info": {"node": env.get("hostname"), "processor": env.get("device_name"),
                         "machine": env.get("device"), "python_version": env.get("python"),
                         "cpu": {"count": env.get("cpu_count")}, "torch": env.get("torch")},
        "commit_info": {"id": env.get("commit"), "dirty": env.get("dirty"), "time": env.get("utc")},
        "benchmarks": benches,
        "datetime": env.get("utc"),
        "version": "harness-1",
    }
