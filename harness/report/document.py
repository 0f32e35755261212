"""Run reports: ``report.md`` and ``report.html`` with pandas tables and PNG figures.

This module only formats: numbers come from the run (results.parquet, env.json), from
``harness.judge.gate`` (comparison with a baseline) and, for the nightly, from its trend findings
passed in as extra sections. Figures go to ``<out>/figures/`` and are linked with relative
paths, so a run directory can be copied or browsed as it is. Every file is written
atomically.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.judge import ratios as ratiomod
from harness.judge.gate import GateConfig, GateResult, LatencyVerdict, describe_key, gate
from harness.judge.trend import TrendConfig, TrendResult
from harness.store.atomic import atomic_write
from harness.store.baseline import RunData
from harness.store.results import (Outcome, VariantInfo, baseline_variant, measured_rows, outcome,
                                    read_attribution, variant_infos)

log = logging.getLogger(__name__)

FIG_DIR = "figures"


def _figures():
    """harness.report.figures, imported on first use: matplotlib costs seconds at import, and every
    ``python -m harness`` command imports this module to register ``report``."""
    from harness.report import figures

    return figures
NUMERIC_COLS = ["workload", "variant", "dtype", "num_tokens", "hidden", "max_abs_err",
                "bitwise_equal", "ok", "error"]


@dataclass
class Section:
    """One report section: prose, optional tables and optional figure (relative path)."""

    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figure: str | None = None
    figure_alt: str = ""


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    figures: tuple[Path, ...]


# ---------------------------------------------------------------- formatting helpers


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """GitHub-flavoured markdown table (no tabulate dependency); a column with no value in any
    row is left out (an empty column tells the reader nothing)."""
    if frame.empty:
        return "_(none)_"
    cols = [str(c) for c in frame.columns]
    body = [[_cell(v).replace("|", "\\|").replace("\n", " ") for v in rec]
            for rec in frame.itertuples(index=False, name=None)]
    keep = [j for j in range(len(cols)) if any(row[j] for row in body)]
    lines = ["| " + " | ".join(cols[j] for j in keep) + " |", "|" + "|".join("---" for _ in keep) + "|"]
    lines += ["| " + " | ".join(row[j] for j in keep) + " |" for row in body]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #eee}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}
tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code{background:#f4f4f4;padding:0 3px}
"""


def render_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        if sec.text:
            out += [sec.text, ""]
        if sec.figure:
            out += [f"![{sec.figure_alt or sec.title}]({sec.figure})", ""]
        for caption, table in sec.tables:
            if caption:
                out += [f"**{caption}**", ""]
            out += [markdown_table(table), ""]
    return "\n".join(out)


def render_html(title: str, markdown: str) -> str:
    """The markdown report as a standalone page, rendered by markdown-it-py (CommonMark plus
    GitHub's tables), so the HTML shows exactly what the markdown says."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + body
        + "\n</body></html>\n"
    )


# ---------------------------------------------------------------- sections


def _infos(run: RunData) -> list[VariantInfo]:
    """The run's variant declarations (``env.json``; derived from the rows for older runs)."""
    return variant_infos(run.env, run.rows)


def _live(rows: pd.DataFrame) -> pd.DataFrame:
    return measured_rows(rows)


def glance_section(run: RunData) -> Section:
    """What a reviewer asks first: did anything miscompile, what did the pass save, how far is
    it from the ideal; then the per-workload brief ``harness run`` prints, and failed rows."""
    from harness.report import summary

    infos = _infos(run)
    failed = summary.failure_groups(run.rows, infos)
    tables = [("Per workload and dtype", summary.brief(run.rows, infos))]
    if len(failed):
        tables.append(("Failed rows, by workload, dtype and variant", failed))
    return Section("At a glance", "\n".join(summary.overview(run.rows, infos)), tables)


def summary_section(run: RunData) -> Section:
    env = run.env
    rows = run.rows
    live = _live(rows)
    keys = ["device", "device_name", "peak_gbps_measured", "suite", "torch", "triton", "cuda",
            "driver", "commit", "dirty", "utc", "hostname"]
    env_table = pd.DataFrame([(k, _cell(env.get(k))) for k in keys if _cell(env.get(k))],
                             columns=["field", "value"])
    failing = int((~live["ok"].astype(bool)).sum())
    text = (
        f"{len(rows)} rows ({len(rows) - len(live)} skipped), "
        f"{live['workload'].nunique()} workloads, variants: "
        f"{', '.join(_figures().variant_order(live, _infos(run))) if not live.empty else 'none'}. "
        f"{failing} rows failed validation."
    )
    return Section("Run", text, [("Environment", env_table)])


def headline_section(run: RunData) -> Section | None:
    """The GPU headline table of docs/findings.md, made from the run; None when no pass variant was measured."""
    from harness.report.headline import headline_table

    table = headline_table(run.rows, _infos(run), ratiomod.ratio_table(run.samples))
    if table.empty:
        return None
    peak = run.env.get("peak_gbps_measured")
    text = (f"{run.device_name or run.device}, torch {run.env.get('torch', '?')}, Triton "
            f"{run.env.get('triton', '?')}; copy bandwidth measured in the run: "
            f"{f'{peak:.0f} GB/s' if isinstance(peak, (int, float)) else 'not measured'}. Largest "
            f"token count of each workload, model and dtype; p50 latencies; the last column is the "
            f"in-run paired ratio with its 95% interval where the run has block samples.")
    return Section("Headline", text, [("Per workload at its largest token count", table)])


def latency_section(run: RunData, fig_dir: Path, made: list[Path]) -> Section:
    path = _figures().latency_vs_tokens(run.rows, _infos(run), fig_dir / "latency_vs_tokens.png")
    live = _live(run.rows)
    pivot = pd.DataFrame()
    if not live.empty:
        pivot = live.pivot_table(index=["workload", "dtype", "num_tokens", "hidden"],
                                 columns="variant", values="latency_us_p50", aggfunc="median")
        pivot = pivot[[v for v in _figures().variant_order(live, _infos(run)) if v in pivot.columns]].reset_index()
        pivot.columns.name = None
    if path:
        made.append(path)
    return Section(
        "Latency against token count",
        "Median latency (microseconds) of each variant. At small token counts the win from "
        "clone removal is the launch it saves; at large counts, the bytes.",
        [("p50 latency (us) per variant", pivot)],
        f"{FIG_DIR}/{path.name}" if path else None,
        "latency p50 against tokens, per variant",
    )


def bandwidth_section(run: RunData, fig_dir: Path, made: list[Path]) -> Section:
    peak = run.env.get("peak_gbps_measured")
    try:
        peak = float(peak) if peak is not None else None
    except (TypeError, ValueError):
        peak = None
    path = _figures().bandwidth_roofline(run.rows, _infos(run), peak, fig_dir / "bandwidth_roofline.png")
    live = _live(run.rows)
    table = pd.DataFrame()
    if not live.empty and "pct_of_peak" in live:
        table = live.pivot_table(index=["workload", "dtype", "num_tokens"], columns="variant",
                                 values="pct_of_peak", aggfunc="median")
        table = table[[v for v in _figures().variant_order(live, _infos(run)) if v in table.columns]].reset_index()
        table.columns.name = None
    if path:
        made.append(path)
    peak_txt = f"{peak:,.0f} GB/s" if peak else "not measured"
    return Section(
        "Bandwidth against the measured peak",
        f"Achieved GB/s is the byte model divided by p50 latency; the roof is the copy "
        f"bandwidth measured in the same run ({peak_txt}).",
        [("% of measured peak", table)],
        f"{FIG_DIR}/{path.name}" if path else None,
        "achieved GB/s against bytes moved, with the measured peak",
    )


def removal_section(run: RunData, fig_dir: Path, made: list[Path]) -> Section:
    path = _figures().clones_and_bytes_removed(run.rows, _infos(run), fig_dir / "clones_bytes_removed.png")
    table = _figures().removal_table(run.rows, _infos(run))
    if not table.empty:
        table = table.assign(variant=table["variant"].astype(str),
                             MB_removed=(table["bytes_removed"] / 1e6).round(3))
        table = table.drop(columns=["bytes_removed"])
    if path:
        made.append(path)
    return Section(
        "Clones and bytes removed per workload",
        f"`{baseline_variant(_infos(run))}` keeps every protective clone; "
        f"{', '.join(f'`{i.name}`' for i in _infos(run) if i.policy is not None) or 'no variant'} "
        f"remove what their policy allows. Bytes removed are measured against "
        f"`{baseline_variant(_infos(run))}` on the same shape.",
        [("Summed over shapes and dtypes", table)],
        f"{FIG_DIR}/{path.name}" if path else None,
        "clones and bytes removed per workload",
    )


def attribution_section(run: RunData, fig_dir: Path, made: list[Path]) -> Section | None:
    """Kernel time per class, from the run's attribution table (runs made with --attribution)."""
    source = Path(run.source) if run.source else None
    table = read_attribution(source) if source is not None and source.is_dir() else None
    if table is None or table.empty:
        return None
    path = _figures().kernel_time_breakdown(table, _infos(run), fig_dir / "kernel_time_breakdown.png")
    if path:
        made.append(path)
    cols = [c for c in ("workload", "variant", "dtype", "num_tokens", "copy_us", "saving_realized",
                        "peak_mem_bytes") if c in run.rows.columns]
    summary = _live(run.rows)[cols] if "copy_us" in run.rows.columns else pd.DataFrame()
    return Section(
        "Where the time goes",
        "Kernel time per call split into copies, our IR kernels, matrix multiplies, attention and "
        "the rest (profiler; a fused kernel is split over the classes of the nodes it fused). "
        "`saving_realized` is the time the pass saved over what its removed bytes cost at the "
        "measured copy bandwidth.",
        [("Per case (largest token count per workload)", _figures().attribution_case_table(table)),
         ("Copy time, realized saving and peak memory", summary)],
        f"{FIG_DIR}/{path.name}" if path else None,
        "stacked kernel time per class and variant, per workload",
    )


def numerics_section(run: RunData) -> Section:
    live = _live(run.rows)
    cols = [c for c in NUMERIC_COLS if c in live.columns]
    verdicts = pd.DataFrame()
    if not live.empty:
        verdicts = live.groupby("variant").agg(
            rows=("ok", "size"),
            ok=("ok", lambda s: int(s.astype(bool).sum())),
            bitwise_equal=("bitwise_equal", lambda s: int(s.fillna(False).astype(bool).sum())),
            max_abs_err=("max_abs_err", "max"),
        ).reset_index()
        order = {v: i for i, v in enumerate(_figures().variant_order(live, _infos(run)))}
        verdicts = verdicts.sort_values("variant", key=lambda s: s.map(order))
    judged = live.assign(outcome=[outcome(s, bool(o), bool(e)).value for s, o, e in
                                  zip(live["status"], live["ok"], live["expected_wrong"])])
    unexpected = judged[judged["outcome"] == Outcome.UNEXPECTED.value][cols]
    expected = judged[judged["outcome"] == Outcome.EXPECTED_WRONG.value][cols]
    stale = judged[judged["outcome"] == Outcome.PREDICTION_STALE.value][cols]
    base = baseline_variant(_infos(run))
    text = (f"Every variant is checked against a float64 reference and bit for bit against the "
            f"variant it promises to match; `bitwise_equal` counts rows bit-identical to `{base}`. "
            f"Failures the workload predicts (the reference pass's holes) are **expected wrong (as "
            f"predicted)**: {len(expected)} rows; failures nobody predicted are **unexpected**: "
            f"{len(unexpected)} rows.")
    tables = [("Verdicts per variant", verdicts),
              ("Unexpected failures", unexpected),
              ("Expected wrong (as predicted)", expected)]
    if not stale.empty:
        tables.append(("Predicted wrong, but correct (the workload's prediction is stale)", stale))
    return Section("Numerics", text, tables)


def ratios_section(run: RunData) -> Section | None:
    """The in-run ratios of ``cleanpass`` (paired blocks of this run); None without samples."""
    table = ratiomod.ratio_table(run.samples)
    if table.empty:
        return None
    table = table.assign(cell=[f"x{r:.3f} [{lo:.3f}, {hi:.3f}]" if lo == lo else f"x{r:.3f}"
                               for r, lo, hi in zip(table["ratio"], table["ratio_low"],
                                                    table["ratio_high"])])
    pivot = table.pivot_table(index=["workload", "dtype", "num_tokens", "hidden"],
                              columns="denominator", values="cell", aggfunc="first").reset_index()
    text = ("Median of `cleanpass` over the median of each partner, over the blocks both ran "
            "in (95% paired-bootstrap interval; below 1: `cleanpass` is faster). Measured side "
            "by side in this run, so it is comparable across machines of one model.")
    return Section("In-run ratios", text, [("cleanpass / partner", pivot)])


def comparison_section(result: GateResult, baseline: RunData, config: GateConfig,
                       fig_dir: Path, made: list[Path]) -> Section:
    verdict = "FAIL" if result.regressions else "PASS"
    findings = pd.DataFrame(
        [(f.level.value, describe_key(f.key) if f.key else "", f.metric, _cell(f.before),
          _cell(f.after), f.reason) for f in result.findings],
        columns=["level", "row", "metric", "baseline", "run", "why"],
    )
    path = _figures().latency_ratio_forest(result.latency, config.threshold,
                                        fig_dir / "latency_vs_baseline.png")
    if path:
        made.append(path)
    flagged = [c for c in result.latency if c.verdict is not LatencyVerdict.PASS]
    top = sorted((c for c in result.latency if c.verdict is LatencyVerdict.PASS), key=lambda c: -c.point)
    lat = pd.DataFrame(
        [(describe_key(c.key), c.base_p50, c.run_p50, c.point, c.low, c.high, c.verdict.value)
         for c in flagged + top[:10]],
        columns=["row", "baseline p50 us", "run p50 us", "ratio", "CI low", "CI high", "verdict"],
    )
    text = (
        f"Gate verdict: **{verdict}** against `{Path(baseline.source).name}` "
        f"({baseline.device_name}, commit {baseline.env.get('commit', '?')}). "
        f"{result.summary()}."
    )
    tables = [("Findings", findings)]
    if not lat.empty:
        tables.append((
            f"Latency ratios, bootstrap CI of the median ratio ({len(flagged)} flagged rows, "
            f"then the 10 highest of {len(result.latency) - len(flagged)} passing rows)", lat))
    return Section("Comparison with the baseline", text, tables,
                   f"{FIG_DIR}/{path.name}" if path else None, "latency ratio against the baseline")


# ---------------------------------------------------------------- entry points


def trend_section(result: TrendResult, config: TrendConfig) -> Section:
    """The nightly's verdict and findings, as a section placed before the run's own ones."""
    verdict = "FAIL" if result.exit_code else "PASS"
    findings = pd.DataFrame(
        [(f.level.value, describe_key(f.key) if f.key else "", f.metric, f.before, f.after, f.reason)
         for f in result.findings],
        columns=["level", "row", "metric", "reference", "tonight", "why"],
    )
    used = ", ".join(Path(s).name for s in result.history_used) or "none"
    text = (
        f"Nightly verdict: **{verdict}**. Each metric is compared with the median of the last "
        f"{config.window} runs on the same GPU model (used: {used}). A violation is a WARN on "
        f"its first night and a REGRESSION when the previous run violated too. Latency "
        f"tolerance: {config.threshold:.0%} and {config.floor_us:g} us."
    )
    return Section("Nightly trend", text, [("Findings", findings)])


def build_report(
    run: RunData,
    out_dir: Path | str,
    *,
    against: RunData | None = None,
    config: GateConfig | None = None,
    extra: list[Section] | None = None,
    title: str | None = None,
) -> ReportPaths:
    """Write report.md, report.html and figures/*.png for ``run`` into ``out_dir``."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / FIG_DIR
    config = config or GateConfig()
    made: list[Path] = []
    sections = [glance_section(run), summary_section(run)]
    headline = headline_section(run)
    sections += [headline] if headline is not None else []
    if against is not None:
        result = gate(against, run, config)
        sections.append(comparison_section(result, against, config, fig_dir, made))
    sections += list(extra or [])
    ratios = ratios_section(run)
    sections += [ratios] if ratios is not None else []
    sections += [
        latency_section(run, fig_dir, made),
        bandwidth_section(run, fig_dir, made),
        removal_section(run, fig_dir, made),
    ]
    breakdown = attribution_section(run, fig_dir, made)
    sections += ([breakdown] if breakdown is not None else []) + [numerics_section(run)]
    title = title or (
        f"cleanpass report: {run.env.get('suite', '?')} suite on {run.device_name or run.device}"
        f" ({run.env.get('utc', '')})"
    )
    text = render_markdown(title, sections)
    md = atomic_write(out_dir / "report.md", text, replace=True)
    page = atomic_write(out_dir / "report.html", render_html(title, text), replace=True)
    log.info("wrote %s and %s with %d figures", md, page, len(made))
    return ReportPaths(md, page, tuple(made))
