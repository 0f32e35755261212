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

from harness.store.results import (CASE_KEY, Outcome, VariantInfo, baseline_variant, bound_variant,
                                   byte_column, measured_rows, outcome, pass_variant, reference_variant,
                                   unfolded_variant)

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


# ---- the brief: what ``harness run`` prints and what the report opens with -----------------

#: Failed-row groups the brief lists before pointing to the report.
BRIEF_FAILURES = 8


def _pipelines(df: pd.DataFrame) -> list[str]:
    """The brief's grouping: by pipeline too when the run has rows from more than one."""
    return ["pipeline"] if "pipeline" in df and df["pipeline"].nunique() > 1 else []


def _variant_present(df: pd.DataFrame, name: str | None) -> bool:
    return bool(name) and bool((df["variant"] == name).any())


def _byte_pairs(g: pd.DataFrame, col: str, num: str, den: str) -> pd.DataFrame:
    """Per case, the bytes of ``num`` and ``den`` where both were counted at the row's own token
    count: a compiled variant's count is taken once per compile group, at its largest token
    count (``bytes_at_tokens``), and only there compares with another variant's. Zero or missing
    counts are left out."""
    rows = g[g["variant"].isin([num, den])]
    if "bytes_at_tokens" in rows:
        at = rows["bytes_at_tokens"].astype(float)
        rows = rows[at.isna() | (at == rows["num_tokens"].astype(float))]
    t = rows.assign(**{col: rows[col].astype(float)}).pivot_table(
        index=_CASE, columns="variant", values=col, aggfunc="first")
    if num not in t or den not in t:
        return pd.DataFrame(columns=[num, den])
    both = t[[num, den]].dropna()
    return both[(both[num] > 0) & (both[den] > 0)]


def _ratio_of_sums(g: pd.DataFrame, col: str, num: str, den: str) -> float:
    """sum(num) / sum(den) of the bytes over the cases both counted alike (``_byte_pairs``)."""
    both = _byte_pairs(g, col, num, den)
    return float(both[num].sum() / both[den].sum()) if len(both) else math.nan


def _geomean_ratio(g: pd.DataFrame, num: str, den: str) -> float:
    """Geometric mean over cases of p50(num) / p50(den)."""
    t = g.pivot_table(index=_CASE, columns="variant", values="latency_us_p50", aggfunc="first")
    if num not in t or den not in t:
        return math.nan
    return _geomean(t[num].astype(float) / t[den].astype(float))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 3].rstrip(" ,;:") + "..."


def _cases(n: int) -> str:
    return f"{n} case" + ("" if n == 1 else "s")


def _x(v: float) -> str:
    return f"{v:.3f}x" if v == v else "-"


def brief(df: pd.DataFrame, infos: Sequence[VariantInfo], native: str = "native") -> pd.DataFrame:
    """One row per workload and dtype (and pipeline, when the run mixes them): clones the
    baseline holds -> the pass leaves (-> vLLM's own pass leaves, when it ran); bytes and time of
    the pass relative to the baseline and to Inductor alone (``native``); whether every pass row
    matched its partner bit for bit. Bytes are summed over the cases both variants counted at
    the row's own token count (``_byte_pairs``); times are the geometric mean of the per-case
    p50 ratios (below 1: the pass moves less, runs faster)."""
    live = measured_rows(df)
    base, cand = baseline_variant(infos) or "", pass_variant(infos) or ""
    real = next((i.name for i in infos if i.reference and i.policy == "vllm-real"), None)
    real = real if _variant_present(live, real) else None
    if live.empty or not cand:
        return pd.DataFrame()
    col = byte_column(live)
    live = live.assign(**{col: live[col].astype(float)})
    keys = ["workload", "dtype"] + _pipelines(live)
    chain = [base, cand] + ([real] if real else [])
    has_native = _variant_present(live, native)
    out = []
    for key, g in live.groupby(keys, sort=True):
        counts = []
        for v in chain:
            rows = g[g["variant"] == v]
            c = rows["clones_before" if v == base else "clones_after"].dropna()
            counts.append(str(int(c.max())) if len(c) else "?")
        mine = g[g["variant"] == cand]
        exact = mine["bitwise_equal"].fillna(False).astype(bool) if "bitwise_equal" in mine else mine["ok"]
        row = dict(zip(keys, key))
        row.update({
            "clones " + " -> ".join(chain): " -> ".join(counts),
            f"bytes vs {base}": _x(_ratio_of_sums(g, col, cand, base)),
            **({f"bytes vs {native}": _x(_ratio_of_sums(g, col, cand, native))} if has_native else {}),
            f"time vs {base}": _x(_geomean_ratio(g, cand, base)),
            **({f"time vs {native}": _x(_geomean_ratio(g, cand, native))} if has_native else {}),
            "bit-exact": ("yes" if bool(exact.all()) else f"NO ({int((~exact).sum())} rows)")
            if len(mine) else "-",
        })
        out.append(row)
    return pd.DataFrame(out)


def failure_groups(df: pd.DataFrame, infos: Sequence[VariantInfo]) -> pd.DataFrame:
    """Failed rows grouped by workload, dtype, variant (and pipeline) and outcome: how many,
    and the first row's reason in one line. Unexpected failures first."""
    bad = measured_rows(df)
    bad = bad[~bad["ok"].astype(bool)]
    if bad.empty:
        return pd.DataFrame(columns=["workload", "dtype", "variant", "outcome", "rows", "reason"])
    keys = ["workload", "dtype", "variant"] + _pipelines(df)
    out = []
    for key, g in bad.groupby(keys, sort=True):
        verdicts = pd.Series([outcome(s, bool(o), bool(e)).value for s, o, e in
                              zip(g["status"], g["ok"], g["expected_wrong"].fillna(False))], index=g.index)
        for verdict, h in g.groupby(verdicts):
            reason = str(h["error"].iloc[0] or "").strip().splitlines()
            out.append({**dict(zip(keys, key)), "outcome": verdict, "rows": len(h),
                        "reason": _clip(reason[0] if reason else "", 100)})
    table = pd.DataFrame(out)
    return table.sort_values("outcome", key=lambda s: s != Outcome.UNEXPECTED.value, kind="stable")


def format_brief(df: pd.DataFrame, infos: Sequence[VariantInfo]) -> list[str]:
    """The few lines ``harness run`` ends with: the brief table, then failed rows, one line each."""
    table = brief(df, infos)
    lines = [table.to_string(index=False)] if not table.empty else ["(no pass rows measured)"]
    skipped = df[df["status"] == "skipped"] if "status" in df else df.iloc[0:0]
    if len(skipped):  # e.g. the vllm suite without vLLM: say why, once per reason
        for reason, group in skipped.groupby("error", sort=False):
            lines.append(f"skipped: {len(group)} rows, {_clip(str(reason).removeprefix('skipped: '), 100)}")
    base = baseline_variant(infos) or "lowered"
    noisy = "device" in df and set(df["device"]) == {"cpu"}
    lines += [f"  below 1: {pass_variant(infos) or 'the pass'} moves fewer bytes / takes less time than {base} "
              f"(every clone kept) or native (Inductor alone)",
              "  bytes: exact, where both were counted at the case's own token count; time: geometric mean "
              "of p50 ratios" + (" (noisy on a shared CPU)" if noisy else "")]
    failed = failure_groups(df, infos)
    if len(failed):
        lines.append(f"failed: {int(failed['rows'].sum())} rows")
        for r in failed.head(BRIEF_FAILURES).to_dict("records"):
            where = " ".join(str(r[k]) for k in ("workload", "dtype", "variant", "pipeline") if k in r)
            lines.append(f"  {where}: {r['rows']} rows, {r['outcome']}: {r['reason']}")
        if len(failed) > BRIEF_FAILURES:
            lines.append(f"  ... {len(failed) - BRIEF_FAILURES} more groups in the report")
    return lines


def _baseline_failed(rows: pd.DataFrame, base: str) -> pd.Series:
    """Rows of a workload and dtype whose baseline row failed: no pass can be judged against
    it (the engine zoo's architectures that do not start, an engine that differs from itself)."""
    base_rows = rows[rows["variant"] == base]
    failed = base_rows[~base_rows["ok"].fillna(False).astype(bool)]
    keys = set(zip(failed["workload"], failed["dtype"]))
    return pd.Series([k in keys for k in zip(rows["workload"], rows["dtype"])], index=rows.index, dtype=bool)


def overview(df: pd.DataFrame, infos: Sequence[VariantInfo]) -> list[str]:
    """Three markdown bullets, the reviewer's first questions: did anything miscompile, what did
    the pass save, how far is it from the hand-written bound."""
    live = measured_rows(df)
    base, cand = baseline_variant(infos) or "", pass_variant(infos) or ""
    bound, ref = bound_variant(infos) or "", reference_variant(infos) or ""
    unjudged = _baseline_failed(live, base)
    judgeable = live[~unjudged]
    mine = judgeable[judgeable["variant"] == cand]
    if live.empty or live[live["variant"] == cand].empty:
        return ["- No row of the pass under test was measured."]
    judged = [outcome(s, bool(o), bool(e)) for s, o, e in
              zip(judgeable["status"], judgeable["ok"], judgeable["expected_wrong"].fillna(False))]
    unexpected = sum(j is Outcome.UNEXPECTED for j in judged)
    expected = sum(j is Outcome.EXPECTED_WRONG for j in judged)
    inexact = int((~mine["bitwise_equal"].fillna(False).astype(bool)).sum())
    verdict = ("**No miscompile**" if not unexpected and not inexact else
               f"**MISCOMPILE SUSPECTED**: {unexpected} unexpected failures")
    cases = live.loc[unjudged, ["workload", "dtype"]].drop_duplicates()
    lines = [f"- **Did anything miscompile?** {verdict}: `{cand}` matched `{base}` bit for bit on "
             f"{len(mine) - inexact} of {len(mine)} rows; {unexpected} rows of any variant failed "
             f"unexpectedly" + (f"; {expected} `{ref}` rows are wrong as the workloads predict "
                                f"(the reference pass's holes)" if expected else "")
             + (f"; {int(unjudged.sum())} rows of {len(cases)} workload/dtype pairs are not judged: "
                f"their `{base}` row failed too (nothing to compare with; see the failures)"
                if len(cases) else "") + "."]
    col = byte_column(live)
    clones_b = live[live["variant"] == base].groupby(["workload", "dtype"])["clones_before"].max().sum()
    clones_a = mine.groupby(["workload", "dtype"])["clones_after"].max().sum()
    saved = ""
    both = _byte_pairs(live, col, cand, base)
    if len(both):
        saved = (f"; bytes moved {both[base].sum() / 1e6:,.1f} MB -> {both[cand].sum() / 1e6:,.1f} MB "
                 f"({100 * (1 - both[cand].sum() / both[base].sum()):.1f}% less, summed over the "
                 f"{_cases(len(both))} counted at their own token count)")
    lines.append(f"- **What did the pass save?** clones {int(clones_b)} -> {int(clones_a)} (per workload "
                 f"and dtype, summed){saved}; `{cand}` takes {_x(_geomean_ratio(live, cand, base))} the "
                 f"time of `{base}` (geometric mean of p50 ratios; below 1 = the pass is faster).")
    gap = _byte_pairs(live, col, cand, bound) if bound else pd.DataFrame()
    if len(gap):
        per = (gap[cand] / gap[bound]).groupby(level="workload").max()
        off = ", ".join(f"`{w}` {v:.3f}x" for w, v in per.items() if abs(v - 1) > 0.005) or "none"
        lines.append(f"- **How far from the ideal?** `{cand}` moves {_x(gap[cand].sum() / gap[bound].sum())} "
                     f"the bytes of `{bound}` (the hand-written program, no clones; {_cases(len(gap))}; "
                     f"workloads off by more than 0.5%: {off}) and takes "
                     f"{_x(_geomean_ratio(live, cand, bound))} its time (geometric mean of p50 ratios; "
                     f"1 = as good as hand-written).")
    else:
        lines.append(f"- **How far from the ideal?** the run has no `{bound or 'ideal'}` bytes to compare with.")
    return lines
