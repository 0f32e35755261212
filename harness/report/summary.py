"""The closing per-workload summary of a run (pure: DataFrame in, DataFrame out).

Per workload, over all its shapes and dtypes:
- ``clones``: clones in the lowered graph -> left by cleanpass (the pass's own report);
- ``bytes_saved``: median of 1 - cleanpass/lowered Inductor bytes accessed;
- ``speedup``: geometric mean of lowered p50 / cleanpass p50 (>1 = cleanpass faster);
- ``vs_ideal``: geometric mean of cleanpass p50 / ideal p50 (1 = as fast as hand-written);
- ``vllm_ok`` and ``numerics``: failing rows of the vllm variant, and of all variants.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.store.results import REFERENCE_VARIANTS

_CASE = ["workload", "model", "hidden", "num_tokens", "dtype"]


def _geomean(x: pd.Series) -> float:
    v = x.to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if v.size else math.nan


def _pivot(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df.pivot_table(index=_CASE, columns="variant", values=col, aggfunc="first")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per workload with the columns described in the module docstring."""
    out = []
    lat = _pivot(df, "latency_us_p50")
    byt = _pivot(df.assign(bytes_accessed=df["bytes_accessed"].astype(float)), "bytes_accessed")
    for wl, g in df.groupby("workload", sort=True):
        cp = g[g["variant"] == "cleanpass"]
        low = g[g["variant"] == "lowered"]
        before = low["clones_before"].dropna()
        after = cp["clones_after"].dropna()
        clones = f"{int(before.max()) if len(before) else '?'}->{int(after.max()) if len(after) else '?'}"
        lw = lat.xs(wl, level="workload") if wl in lat.index.get_level_values(0) else pd.DataFrame()
        bw = byt.xs(wl, level="workload") if wl in byt.index.get_level_values(0) else pd.DataFrame()

        def ratio(t: pd.DataFrame, a: str, b: str) -> pd.Series:
            if a in t and b in t:
                return t[a] / t[b]
            return pd.Series(dtype=float)

        saved = 1.0 - ratio(bw, "cleanpass", "lowered")
        saved = saved[np.isfinite(saved.to_numpy(dtype=float))] if len(saved) else saved
        bad = g[~g["ok"]]
        vllm_bad = bad[bad["variant"].isin(REFERENCE_VARIANTS)]
        others_bad = bad[~bad["variant"].isin(REFERENCE_VARIANTS)]
        out.append({
            "workload": wl,
            "cases": int(g[_CASE].drop_duplicates().shape[0]),
            "clones": clones,
            "bytes_saved": f"{100 * float(saved.median()):.0f}%" if len(saved) else "n/a",
            "speedup": _geomean(ratio(lw, "lowered", "cleanpass")),
            "vs_ideal": _geomean(ratio(lw, "cleanpass", "ideal")),
            "vllm_ok": "ok" if vllm_bad.empty else f"FAIL {len(vllm_bad)}",
            "numerics": "ok" if others_bad.empty else
            f"FAIL {len(others_bad)}/{len(g)} ({','.join(sorted(set(others_bad['variant'])))})",
        })
    return pd.DataFrame(out)


def format_summary(s: pd.DataFrame) -> str:
    """Plain-text table for the terminal."""
    if s.empty:
        return "(no rows)"
    t = s.copy()
    t["speedup"] = [f"{v:.2f}x" if v == v else "n/a" for v in t["speedup"]]
    t["vs_ideal"] = [f"{v:.2f}x" if v == v else "n/a" for v in t["vs_ideal"]]
    return t.to_string(index=False)
