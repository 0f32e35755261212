"""Matplotlib figures for the report, written as PNG files.

Uses the object-oriented API (``Figure`` + Agg canvas) rather than pyplot, so building a
report neither needs a display nor touches global matplotlib state. Each function takes a
results frame and a path, writes the PNG atomically, and returns the path (or ``None`` when
the frame holds nothing to draw).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from harness.judge.gate import LatencyVerdict, describe_key
from harness.store.atomic import atomic_write
from harness.store.results import VariantInfo, baseline_variant, byte_column, measured_rows

log = logging.getLogger(__name__)

#: Colours by a variant's declared role, so every figure reads the same way.
ROLE_COLORS = {"baseline": "#d62728", "reference": "#ff7f0e", "pass": "#2ca02c", "bound": "#9467bd"}
OTHER_COLORS = ("#7f7f7f", "#1f77b4", "#17becf", "#8c564b", "#e377c2", "#bcbd22")
DTYPE_STYLES = {"bfloat16": "-", "float16": "--", "float32": ":"}
DPI = 110


def _role(info: VariantInfo) -> str | None:
    if info.baseline:
        return "baseline"
    if info.reference:
        return "reference"
    if info.policy is not None:
        return "pass"
    return "bound" if info.bound else None


def colors(infos: Sequence[VariantInfo]) -> dict[str, str]:
    """Variant -> colour: its role's colour, else the next of the others (in declared order)."""
    out, others = {}, iter(OTHER_COLORS)
    for info in infos:
        role = _role(info)
        out[info.name] = ROLE_COLORS[role] if role else next(others, "#17becf")
    return out


def _color(variant: str, infos: Sequence[VariantInfo]) -> str:
    return colors(infos).get(variant, "#17becf")


def _pass_variants(infos: Sequence[VariantInfo]) -> list[str]:
    """Variants that run a clone-elimination policy over the baseline's graph."""
    return [i.name for i in infos if i.policy is not None]


def variant_order(frame: pd.DataFrame, infos: Sequence[VariantInfo]) -> list[str]:
    """Variants present in ``frame``, in their declared order (unknown ones last, by name)."""
    declared = [i.name for i in infos]
    present = list(dict.fromkeys(frame["variant"]))
    return sorted(present, key=lambda v: (declared.index(v) if v in declared else len(declared), v))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write(path, buf.getvalue(), replace=True)
    log.debug("wrote figure %s", path)
    return path


def _usable(rows: pd.DataFrame, *cols: str) -> pd.DataFrame:
    frame = rows.copy()
    for col in cols:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame = frame.dropna(subset=list(cols))
    return measured_rows(frame)


def latency_vs_tokens(rows: pd.DataFrame, infos: Sequence[VariantInfo], path: Path) -> Path | None:
    """p50 latency against token count, one panel per workload, one line per variant
    (line style per dtype); whiskers span p20..p80."""
    frame = _usable(rows, "latency_us_p50", "num_tokens")
    if frame.empty:
        return None
    workloads = sorted(frame["workload"].unique())
    ncols = min(3, len(workloads))
    nrows = int(np.ceil(len(workloads) / ncols))
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        sub = frame[frame["workload"] == wl]
        for variant in variant_order(sub, infos):
            for dtype, grp in sub[sub["variant"] == variant].groupby("dtype"):
                grp = grp.groupby("num_tokens", as_index=False)[
                    ["latency_us_p50", "latency_us_p20", "latency_us_p80"]
                ].median().sort_values("num_tokens")
                lo = (grp["latency_us_p50"] - grp["latency_us_p20"]).clip(lower=0)
                hi = (grp["latency_us_p80"] - grp["latency_us_p50"]).clip(lower=0)
                ax.errorbar(
                    grp["num_tokens"], grp["latency_us_p50"], yerr=[lo.fillna(0), hi.fillna(0)],
                    color=_color(variant, infos), marker="o",
                    linestyle=DTYPE_STYLES.get(dtype, "-.") if frame["dtype"].nunique() > 1 else "-",
                    markersize=3.5, linewidth=1.4, capsize=2,
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())  # minor labels cost seconds and add clutter
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("tokens")
        ax.set_ylabel("latency p50 (us)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    # One shared legend: colour = variant, line style = dtype.
    handles = [Line2D([], [], color=_color(v, infos), marker="o", markersize=4, label=v)
               for v in variant_order(frame, infos)]
    dtypes = sorted(frame["dtype"].unique())
    if len(dtypes) > 1:
        handles += [Line2D([], [], color="black", linestyle=DTYPE_STYLES.get(d, "-."), label=d)
                    for d in dtypes]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8,
               bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle("Latency against token count (lower is better; whiskers p20-p80)", fontsize=11)
    fig.subplots_adjust(bottom=0.18 if nrows == 1 else 0.1, wspace=0.28, hspace=0.35)
    return _save(fig, path)


def bandwidth_roofline(rows: pd.DataFrame, infos: Sequence[VariantInfo], peak_gbps: float | None,
                       path: Path) -> Path | None:
    """Achieved GB/s (from the byte model) against bytes the computation must move, under the
    measured copy peak of the device: points near the roof are bandwidth-bound and done."""
    frame = _usable(rows, "gbps", "model_bytes")
    frame = frame[frame["gbps"] > 0]
    if frame.empty:
        return None
    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    for variant in variant_order(frame, infos):
        sub = frame[frame["variant"] == variant]
        ax.scatter(sub["model_bytes"], sub["gbps"], s=22, color=_color(variant, infos), label=variant,
                   alpha=0.85, edgecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())
    top = float(frame["gbps"].max())
    if peak_gbps and np.isfinite(peak_gbps) and peak_gbps > 0:
        ax.axhline(peak_gbps, color="black", linewidth=1.2, linestyle="--")
        ax.text(float(frame["model_bytes"].min()), peak_gbps * 1.06,
                f"measured copy peak {peak_gbps:,.0f} GB/s", fontsize=8, va="bottom")
        top = max(top, peak_gbps)
    ax.set_ylim(float(frame["gbps"].min()) / 1.6, top * 1.8)
    ax.set_xlabel("bytes the computation must move (byte model)")
    ax.set_ylabel("achieved GB/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Achieved bandwidth against the measured peak (roofline-style)", fontsize=11)
    return _save(fig, path)


def removal_table(rows: pd.DataFrame, infos: Sequence[VariantInfo]) -> pd.DataFrame:
    """Per workload and variant: clones removed and bytes saved against the baseline variant
    (``byte_column``: our exact count when the run has it), for the baseline and every variant
    that runs a clone-elimination policy."""
    base = baseline_variant(infos)
    shown = [base] + _pass_variants(infos)
    frame = measured_rows(rows.copy())
    frame = frame[frame["variant"].isin(shown)]
    if base is None or frame.empty:
        return pd.DataFrame()
    key = ["workload", "dtype", "num_tokens", "hidden", "device"]
    col = byte_column(frame)
    lowered = frame[frame["variant"] == base].set_index(key)[col]
    frame = frame.join(lowered.rename("lowered_bytes"), on=key)
    frame["clones_removed"] = frame["clones_before"] - frame["clones_after"]
    frame["bytes_removed"] = frame["lowered_bytes"] - frame[col]
    out = frame.groupby(["workload", "variant"], as_index=False).agg(
        shapes=("num_tokens", "size"),
        clones_before=("clones_before", "sum"),
        clones_after=("clones_after", "sum"),
        clones_removed=("clones_removed", "sum"),
        bytes_removed=("bytes_removed", "sum"),
    )
    out["variant"] = pd.Categorical(out["variant"], shown)
    return out.sort_values(["workload", "variant"]).reset_index(drop=True)


def clones_and_bytes_removed(rows: pd.DataFrame, infos: Sequence[VariantInfo], path: Path) -> Path | None:
    """Two bar charts per workload: clones removed, and bytes no longer moved, per variant."""
    table = removal_table(rows, infos)
    if table.empty:
        return None
    base = baseline_variant(infos)
    table = table[table["variant"] != base]
    workloads = sorted(table["workload"].unique())
    present = set(table["variant"].astype(str))
    variants = [v for v in _pass_variants(infos) if v in present]
    x = np.arange(len(workloads))
    width = 0.8 / max(1, len(variants))
    fig = Figure(figsize=(max(7.0, 1.3 * len(workloads) + 3), 4.4))
    ax1, ax2 = fig.subplots(1, 2)
    for i, variant in enumerate(variants):
        sub = table[table["variant"] == variant].set_index("workload").reindex(workloads)
        ax1.bar(x + i * width, sub["clones_removed"].fillna(0), width, color=_color(variant, infos), label=variant)
        ax2.bar(x + i * width, sub["bytes_removed"].fillna(0) / 1e6, width, color=_color(variant, infos),
                label=variant)
    for ax, label in ((ax1, "clones removed (all shapes)"), (ax2, f"MB no longer moved vs {base}")):
        ax.set_xticks(x + width * (len(variants) - 1) / 2)
        ax.set_xticklabels(workloads, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.subplots_adjust(wspace=0.35)
    fig.suptitle("What the pass removed, per workload (summed over shapes and dtypes)", fontsize=11)
    return _save(fig, path)


def latency_ratio_forest(
    comparisons: Sequence, threshold: float, path: Path, max_rows: int = 30
) -> Path | None:
    """Run/baseline latency ratio with its bootstrap CI per row, against the 1 + threshold
    limit; red rows failed the gate, orange ones only warned. Passing rows beyond
    ``max_rows`` are left out (lowest ratios first): the table lists them all."""
    if not comparisons:
        return None
    # Every failing or warning row, then the highest remaining ratios, up to max_rows.
    flagged = [c for c in comparisons if c.verdict is not LatencyVerdict.PASS]
    rest = sorted((c for c in comparisons if c.verdict is LatencyVerdict.PASS), key=lambda c: -c.point)
    comps = (flagged + rest)[: max(max_rows, len(flagged))]
    comps = sorted(comps, key=lambda c: c.point)
    colors = {LatencyVerdict.REGRESSION: "#d62728", LatencyVerdict.WARN: "#ff7f0e", LatencyVerdict.PASS: "#2ca02c"}
    fig = Figure(figsize=(7.5, 0.9 + 0.24 * len(comps)))
    ax = fig.subplots()
    y = np.arange(len(comps))
    ax.hlines(y, [c.low for c in comps], [c.high for c in comps],
              colors=[colors[c.verdict] for c in comps], linewidth=2)
    ax.scatter([c.point for c in comps], y, color=[colors[c.verdict] for c in comps], s=14, zorder=3)
    ax.axvline(1.0, color="grey", linewidth=1)
    ax.axvline(1.0 + threshold, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels([describe_key(c.key) for c in comps], fontsize=7)
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.set_xlabel(f"latency ratio run / baseline (bootstrap CI); limit {1 + threshold:.2f}")
    ax.grid(True, axis="x", alpha=0.3)
    shown = f"{len(comps)} of {len(comparisons)} rows" if len(comps) < len(comparisons) else "all rows"
    ax.set_title(f"Latency against the baseline ({shown})", fontsize=11)
    return _save(fig, path)


#: Stable colours per kernel class (attribution figure).
CLASS_COLORS = {"copy": "#d62728", "ir": "#2ca02c", "matmul": "#1f77b4", "attention": "#9467bd",
                "other": "#7f7f7f"}


def attribution_case_table(attribution: pd.DataFrame) -> pd.DataFrame:
    """One case per workload (its largest token count; first dtype, hidden by name):
    microseconds per call per (workload, variant, kernel class)."""
    if attribution is None or attribution.empty:
        return pd.DataFrame()
    picked = (attribution.sort_values(["workload", "num_tokens", "dtype", "hidden"],
                                      ascending=[True, False, True, True])
              .groupby("workload", as_index=False).first()[["workload", "num_tokens", "dtype", "hidden"]])
    frame = attribution.merge(picked, on=["workload", "num_tokens", "dtype", "hidden"])
    return frame.pivot_table(index=["workload", "num_tokens", "dtype", "variant"], columns="kernel_class",
                             values="us", aggfunc="sum", fill_value=0.0).reset_index()


def kernel_time_breakdown(attribution: pd.DataFrame, infos: Sequence[VariantInfo], path: Path) -> Path | None:
    """Stacked bars: each variant's time per call split into kernel classes, one panel per
    workload, so a copy segment that shrinks (or a kernel class that dominates) is visible."""
    table = attribution_case_table(attribution)
    if table.empty:
        return None
    classes = [c for c in CLASS_COLORS if c in table.columns]
    workloads = list(dict.fromkeys(table["workload"]))
    ncols = min(3, len(workloads))
    nrows = int(np.ceil(len(workloads) / ncols))
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, wl in zip(axes.flat, workloads):
        sub = table[table["workload"] == wl].set_index("variant")
        order = variant_order(sub.reset_index(), infos)
        bottom = np.zeros(len(order))
        for cls in classes:
            vals = sub.loc[order, cls].to_numpy(dtype=float)
            ax.bar(order, vals, bottom=bottom, color=CLASS_COLORS[cls], label=cls)
            bottom += vals
        first = sub.iloc[0]
        ax.set_title(f"{wl} ({first['dtype']}, {int(first['num_tokens'])} tokens)", fontsize=10)
        ax.set_ylabel("kernel time per call (us)")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=CLASS_COLORS[c], linewidth=6, label=c) for c in classes]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle("Where the time goes: kernel time per class (profiler)", fontsize=11)
    fig.subplots_adjust(bottom=0.2 if nrows == 1 else 0.1, wspace=0.3, hspace=0.5)
    return _save(fig, path)
