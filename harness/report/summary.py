"""The closing per-workload summary of a run (pure: DataFrame in, DataFrame out).

The variants play the roles their registration declares (``VariantInfo``): the baseline
(``lowered``), the pass under test (the first non-reference variant with a policy,
``cleanpass``), the reference pass (``vllm``) and the hand-written bound (``ideal``).
Per workload, over all its shapes and dtypes:
- ``clones``: clones in the baseline graph -> left by the pass (the pass's own report);
- ``bytes_saved``: median of 1 - pass/baseline bytes (``bytes_exact``; Inductor's
  ``bytes_accessed`` for runs written before it);
- ``without_folding``: the same for the pass with folding off (``cleanpass_nofold``, when the run
  has it): elimination's share; the rest of ``bytes_saved`` is folding's;
- ``speedup``: geometric mean of baseline p50 / pass p50 (>1 = the pass is faster);
- ``vs_ideal``: geometric mean of pass p50 / bound p50 (1 = as fast as hand-written);
- ``<reference>_ok``: the reference pass's failing rows, and how many the workload predicted;
- ``numerics``: failing rows of every other variant.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from harness.store.results import (CASE_KEY, VariantInfo, baseline_variant, bound_variant, byte_column,
                                   pass_variant, reference_variant, unfolded_variant)

_CASE = list(CASE_KEY)


def _geomean(x: pd.Series) -> float:
    v = x.to_numpy(dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.log(v).mean())) if v.size else math.nan


def _pivot(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df.pivot_table(index=_CASE, columns="variant", values=col, aggfunc="first")


def summarize(df: pd.DataFrame, infos: Sequence[VariantInfo]) -> pd.DataFrame:
    """One row per workload with the columns described in the module docstring."""
    base = baseline_variant(infos) or ""
    cand = pass_variant(infos) or ""
    ref = reference_variant(infos) or ""
    bound = bound_variant(infos) or ""
    unfolded = unfolded_variant(infos, df)
    out = []
    lat = _pivot(df, "latency_us_p50")
    col = byte_column(df)
    byt = _pivot(df.assign(**{col: df[col].astype(float)}), col)
    for wl, g in df.groupby("workload", sort=True):
        before = g[g["variant"] == base]["clones_before"].dropna()
        after = g[g["variant"] == cand]["clones_after"].dropna()
        clones = f"{int(before.max()) if len(before) else '?'}->{int(after.max()) if len(after) else '?'}"
        lw = lat.xs(wl, level="workload") if wl in lat.index.get_level_values(0) else pd.DataFrame()
        bw = byt.xs(wl, level="workload") if wl in byt.index.get_level_values(0) else pd.DataFrame()

        def ratio(t: pd.DataFrame, a: str, b: str) -> pd.Series:
            if a in t and b in t:
                return t[a] / t[b]
            return pd.Series(dtype=float)

        def saved_by(variant: str) -> str:
            saved = 1.0 - ratio(bw, variant, base)
            saved = saved[np.isfinite(saved.to_numpy(dtype=float))] if len(saved) else saved
            return f"{100 * float(saved.median()):.0f}%" if len(saved) else "n/a"

        bad = g[~g["ok"]]
        ref_bad = bad[bad["variant"] == ref]
        predicted = int(ref_bad["expected_wrong"].sum()) if "expected_wrong" in ref_bad else 0
        others_bad = bad[bad["variant"] != ref]
        row = {
            "workload": wl,
            "cases": int(g[[c for c in _CASE if c in g]].drop_duplicates().shape[0]),
            "clones": clones,
            "bytes_saved": saved_by(cand),
            **({"without_folding": saved_by(unfolded)} if unfolded else {}),
            "speedup": _geomean(ratio(lw, base, cand)),
            "vs_ideal": _geomean(ratio(lw, cand, bound)),
        }
        if ref:
            row[f"{ref}_ok"] = "ok" if ref_bad.empty else f"FAIL {len(ref_bad)} ({predicted} predicted)"
        row["numerics"] = "ok" if others_bad.empty else \
            f"FAIL {len(others_bad)}/{len(g)} ({','.join(sorted(set(others_bad['variant'])))})"
        out.append(row)
    return pd.DataFrame(out)


def format_summary(s: pd.DataFrame) -> str:
    """Plain-text table for the terminal."""
    if s.empty:
        return "(no rows)"
    t = s.copy()
    t["speedup"] = [f"{v:.2f}x" if v == v else "n/a" for v in t["speedup"]]
    t["vs_ideal"] = [f"{v:.2f}x" if v == v else "n/a" for v in t["vs_ideal"]]
    return t.to_string(index=False)
