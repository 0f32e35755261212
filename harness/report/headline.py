"""The headline table: one line per workload, model and dtype at its largest token count.

This is the table docs/findings.md quotes after a GPU night (pure: rows in, table out), so
it is made from the run, never typed: clones and copies the pass leaves, the baseline's, the
pass's and the bound's p50 (and the pass's with folding off, where the run has it: elimination
alone), the speedup, how close the pass comes to the copy bandwidth, and
whether the pass's row passed validation (numerics and bit-identity), and ``pass / bound`` as the
in-run paired ratio (with its interval) where the run has block samples, else the ratio of the
two p50s.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from harness.store.results import (VariantInfo, baseline_variant, bound_variant, measured_rows, pass_variant,
                                   unfolded_variant)

_GROUP = ["workload", "model", "hidden", "dtype"]


def _known(value: object) -> bool:
    return value is not None and value == value  # NaN is the missing value of a float column


def _int(value: object) -> str:
    return str(int(value)) if _known(value) else "?"


def _us(value: float) -> str:
    if not _known(value):
        return ""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _vs_bound(ratios: pd.DataFrame, key: dict, bound: str, cand_p50: float, bound_p50: float) -> str:
    """The in-run ratio of the pass over the bound, with its interval when it has one."""
    if not ratios.empty:
        hit = ratios[(ratios["denominator"] == bound)
                     & (ratios["workload"] == key["workload"]) & (ratios["dtype"] == key["dtype"])
                     & (ratios["num_tokens"] == key["num_tokens"]) & (ratios["hidden"] == key["hidden"])]
        if len(hit):
            r = hit.iloc[0]
            if _known(r["ratio_low"]):
                return f"{r['ratio']:.3f}x [{r['ratio_low']:.3f}, {r['ratio_high']:.3f}]"
            return f"{r['ratio']:.3f}x"
    if cand_p50 > 0 and bound_p50 > 0:
        return f"{cand_p50 / bound_p50:.3f}x (p50s)"
    return ""


def headline_table(rows: pd.DataFrame, infos: Sequence[VariantInfo],
                   ratios: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per (workload, model, hidden, dtype) at the largest token count the pass ran."""
    base, cand, bound = (role(infos) or "" for role in (baseline_variant, pass_variant, bound_variant))
    live = measured_rows(rows)
    if live.empty or not cand:
        return pd.DataFrame()
    live = live.assign(model=live["model"].fillna("") if "model" in live else "")
    unfolded = unfolded_variant(infos, live)
    counted = "copies" in live and live["copies"].notna().any()  # runs before the column have none
    ratios = ratios if ratios is not None else pd.DataFrame()
    lines = []
    for key, group in live.groupby(_GROUP, sort=True):
        mine = group[group["variant"] == cand]
        if mine.empty:
            continue
        tokens = int(mine["num_tokens"].max())
        at = group[group["num_tokens"] == tokens].set_index("variant")
        c, b, i, u = ({} if v not in at.index else at.loc[v].to_dict() for v in (cand, base, bound, unfolded))
        p50 = {name: float(r.get("latency_us_p50", math.nan))
               for name, r in (("c", c), ("b", b), ("i", i), ("u", u))}
        workload, model, hidden, dtype = key
        lines.append({
            "workload (model, tokens)": f"`{workload}` ({model or f'hidden {hidden}'}, {tokens})",
            "dtype": dtype,
            f"clones {base} -> {cand}": f"{_int(b.get('clones_before'))} -> {_int(c.get('clones_after'))}",
            **({f"copies {base} -> {cand}": f"{_int(b.get('copies'))} -> {_int(c.get('copies'))}"}
               if counted else {}),
            f"{base} us": _us(p50["b"]),
            **({f"{unfolded} us": _us(p50["u"])} if unfolded else {}),
            f"{cand} us": _us(p50["c"]),
            "speedup": f"{p50['b'] / p50['c']:.2f}x" if p50["c"] > 0 and p50["b"] > 0 else "",
            f"{cand} % of peak": f"{c['pct_of_peak']:.1f}" if _known(c.get("pct_of_peak")) else "",
            f"{bound} us": _us(p50["i"]),
            f"{cand} ok": "yes" if c.get("ok") else "FAIL",
            f"{cand} / {bound}": _vs_bound(ratios, {"workload": workload, "dtype": dtype,
                                                    "num_tokens": tokens, "hidden": hidden},
                                           bound, p50["c"], p50["i"]),
        })
    return pd.DataFrame(lines)
