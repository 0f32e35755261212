"""The nightly job: run the nightly suite, compare with recent history, report, exit code.

Trend rule (KNOWLEDGE.md §5), per row key and metric, on runs of the **same GPU model** and
suite only:

1. The *reference* of a run is the median of that metric over the last ``window`` earlier
   runs (at least ``min_history`` of them, or the metric is not judged: NOTE).
2. A run *violates* when
   - ``clones_after``, ``kernels`` or ``bytes_accessed`` is above its reference;
   - ``ok`` or ``bitwise_equal`` is false where most reference runs had it true;
   - ``latency_us_p50`` is above ``reference * (1 + threshold)`` and by more than ``floor_us``.
3. A violation in tonight's run alone is a WARN; tonight's and the previous run's together
   (the previous one judged against *its* own window) are a REGRESSION, and the exit code
   is 1. One noisy night never pages anyone; a real regression pages on the second night.

History layout: ``DIR/<run dir>/`` each with ``env.json`` and ``results.parquet`` (what
``harness run`` and ``harness merge`` write). The nightly writes its run into ``DIR`` and its
report (``report.md``, ``report.html``, ``trend.csv``) into that run directory.

Many GPUs: each machine runs ``nightly --shard K/N --out SHARD_DIR`` (runs its part of the
matrix, compares nothing: a shard is not a whole run); one job then runs
``harness merge SHARD_DIRS --out DIR/<name>`` and ``nightly --history DIR --run DIR/<name>``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.baseline import KEY, InputError, RunData, atomic_write_text, load_run
from harness.gate import Finding, GateConfig, Level, describe_key
from harness.results import measured_rows
from harness.report import Section, build_report

log = logging.getLogger(__name__)

GROW_METRICS = ("clones_after", "kernels", "bytes_accessed")
FLAG_METRICS = ("ok", "bitwise_equal")
LATENCY = "latency_us_p50"


@dataclass(frozen=True)
class TrendConfig:
    window: int = 7
    min_history: int = 3
    threshold: float = 0.05
    floor_us: float = GateConfig.floor_us


@dataclass
class TrendResult:
    findings: list[Finding]
    history_used: list[str]
    table: pd.DataFrame  # one line per violation: key, metric, value, reference, prev verdict

    @property
    def exit_code(self) -> int:
        return 1 if any(f.level is Level.REGRESSION for f in self.findings) else 0


def _utc(run: RunData) -> pd.Timestamp:
    ts = pd.to_datetime(run.env.get("utc"), utc=True, errors="coerce")
    return ts if not pd.isna(ts) else pd.Timestamp.min.tz_localize("UTC")


def discover_history(history: Path | str, like: RunData) -> list[RunData]:
    """Complete, unsharded runs in ``history`` of the same device model and suite as ``like``,
    oldest first; ``like`` itself is left out."""
    history = Path(history)
    found: list[RunData] = []
    if not history.is_dir():
        return found
    this = Path(like.source).resolve() if like.source else None
    for sub in sorted(p for p in history.iterdir() if p.is_dir()):
        if this is not None and sub.resolve() == this:
            continue
        if not (sub / "env.json").is_file() or not (sub / "results.parquet").is_file():
            continue
        try:
            run = load_run(sub)
        except InputError as exc:
            log.warning("history: skipping %s: %s", sub, exc)
            continue
        if run.env.get("shard"):
            continue  # a partial run: merge shards first
        if (run.device, run.device_name, run.env.get("suite")) != (
            like.device, like.device_name, like.env.get("suite")
        ):
            continue
        found.append(run)
    return sorted(found, key=_utc)


def _long(run: RunData) -> pd.DataFrame:
    """Key columns + the judged metrics of the usable rows of one run."""
    rows = measured_rows(run.rows)
    cols = [c for c in GROW_METRICS + FLAG_METRICS + (LATENCY,) if c in rows.columns]
    out = rows[list(KEY) + cols].copy()
    for c in GROW_METRICS + (LATENCY,):
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in FLAG_METRICS:
        if c in out:
            out[c] = out[c].map(lambda v: float(bool(v)) if v is not None and not pd.isna(v) else float("nan"))
    if "bitwise_equal" in out and "bitwise_partner" in rows:
        # only promised bit-equality is judged (gate rule 3); the rest is a machine observation
        out.loc[rows["bitwise_partner"].astype(str) == "", "bitwise_equal"] = float("nan")
    return out.drop_duplicates(list(KEY))


def violations(run: RunData, window: list[RunData], config: TrendConfig) -> pd.DataFrame:
    """Rule 1-2: the violations of ``run`` against the median of ``window``.

    Returns columns KEY + metric, value, reference, n_ref."""
    cols = list(KEY) + ["metric", "value", "reference", "n_ref"]
    if not window:
        return pd.DataFrame(columns=cols)
    ref_frame = pd.concat([_long(r) for r in window], ignore_index=True)
    metrics = [c for c in ref_frame.columns if c not in KEY]
    ref = ref_frame.groupby(list(KEY), dropna=False)[metrics].median()
    counts = ref_frame.groupby(list(KEY), dropna=False)[metrics].count()
    cur = _long(run).set_index(list(KEY))
    out = []
    for metric in metrics:
        if metric not in cur.columns:
            continue
        joined = pd.DataFrame({"value": cur[metric]}).join(
            pd.DataFrame({"reference": ref[metric], "n_ref": counts[metric]}), how="inner"
        )
        joined = joined[joined["n_ref"] >= config.min_history].dropna(subset=["value", "reference"])
        if metric in GROW_METRICS:
            bad = joined["value"] > joined["reference"]
        elif metric in FLAG_METRICS:
            bad = (joined["reference"] >= 0.5) & (joined["value"] < 0.5)
        else:
            bad = (joined["value"] > joined["reference"] * (1 + config.threshold)) & (
                joined["value"] - joined["reference"] > config.floor_us
            )
        sel = joined[bad].reset_index()
        sel["metric"] = metric
        out.append(sel)
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def trend(run: RunData, history: list[RunData], config: TrendConfig | None = None) -> TrendResult:
    """Rule 3: tonight's violations, confirmed by the previous run's, over ``history``
    (earlier runs of the same device model and suite, oldest first)."""
    config = config or TrendConfig()
    earlier = [r for r in history if _utc(r) < _utc(run)]
    findings: list[Finding] = []
    if len(earlier) < config.min_history:
        findings.append(
            Finding(
                Level.NOTE, None,
                f"only {len(earlier)} earlier runs on {run.device_name or run.device}",
                reason=f"the trend needs {config.min_history}; nothing judged tonight",
            )
        )
    now = violations(run, earlier[-config.window:], config)
    prev = (
        violations(earlier[-1], earlier[:-1][-config.window:], config)
        if earlier
        else now.iloc[0:0]
    )
    prev_keys = {tuple(r) for r in prev[list(KEY) + ["metric"]].itertuples(index=False, name=None)}
    table = now.copy()
    table["previous_run_violated"] = [
        tuple(r) in prev_keys for r in now[list(KEY) + ["metric"]].itertuples(index=False, name=None)
    ]
    for rec in table.to_dict("records"):
        key = tuple(rec[c] for c in KEY)
        metric = rec["metric"]
        value, ref = rec["value"], rec["reference"]
        if metric in FLAG_METRICS:
            value, ref = bool(value), "true"
        why = f"median of the last {int(rec['n_ref'])} runs is {_fmt_ref(ref)}"
        if rec["previous_run_violated"]:
            level, why = Level.REGRESSION, f"{why}; second night in a row"
        else:
            level, why = Level.WARN, f"{why}; first night: flagged if the next run agrees"
        findings.append(Finding(level, key, metric, _fmt_ref(ref), value, why))
    order = {Level.REGRESSION: 0, Level.WARN: 1, Level.NOTE: 2}
    findings.sort(key=lambda f: order[f.level])
    return TrendResult(findings, [r.source for r in earlier[-config.window:]], table)


def _fmt_ref(value: object) -> object:
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 3)
    return value


def trend_section(result: TrendResult, config: TrendConfig) -> Section:
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


def evaluate(run_dir: Path | str, history: Path | str, config: TrendConfig) -> tuple[TrendResult, Path]:
    """Judge an existing run directory against ``history``; write trend.csv and the report."""
    run = load_run(run_dir)
    if run.env.get("shard"):
        raise InputError(f"{run_dir} is shard {run.env['shard']}: merge the shards first")
    result = trend(run, discover_history(history, run), config)
    out = Path(run_dir)
    atomic_write_text(out / "trend.csv", result.table.to_csv(index=False))
    paths = build_report(run, out, extra=[trend_section(result, config)],
                         title=f"cleanpass nightly: {run.device_name or run.device} ({run.env.get('utc', '')})")
    return result, paths.html


def _run_suite(args: argparse.Namespace) -> Path:
    """Run the suite through the harness API (imported lazily: it pulls in torch)."""
    from harness import api, env as envmod, results

    out = args.out
    if out is None:
        out = results.new_run_dir(args.history, envmod.git_commit()[0])
    result = api.run(suite=args.suite, device=args.device, workloads=args.workloads,
                     shard=args.shard, out=out)
    return Path(result.run_dir)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``nightly``."""
    p = subparsers.add_parser(
        "nightly", help="run the nightly suite, compare with recent runs on this GPU model, report"
    )
    p.add_argument("--history", type=Path, help="folder of earlier nightly run directories")
    p.add_argument("--run", type=Path, help="judge this existing run directory (e.g. merged shards) "
                   "instead of running the suite")
    p.add_argument("--shard", metavar="K/N", help="only run shard K of N into --out; no comparison")
    p.add_argument("--out", type=Path, help="run directory to write (default: a new one in --history)")
    p.add_argument("--suite", default="nightly", choices=("smoke", "default", "nightly"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workloads", nargs="+", metavar="NAME", help="only these workloads")
    p.add_argument("--window", type=int, default=TrendConfig.window, help="runs in the median")
    p.add_argument("--min-history", type=int, default=TrendConfig.min_history)
    p.add_argument("--threshold", type=float, default=TrendConfig.threshold)
    p.add_argument("--floor-us", type=float, default=TrendConfig.floor_us)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Run the ``nightly`` subcommand; returns (exit code, lines for the CLI to print)."""
    if args.shard:
        if args.out is None:
            return 2, ["ERROR --shard needs --out (a shard is merged before it is judged)"]
        run_dir = _run_suite(args)
        return 0, [f"shard {args.shard} written to {run_dir}; merge the shards, then "
                   f"`nightly --history DIR --run MERGED`"]
    if args.history is None:
        return 2, ["ERROR --history is required"]
    config = TrendConfig(args.window, args.min_history, args.threshold, args.floor_us)
    try:
        run_dir = args.run if args.run is not None else _run_suite(args)
        result, page = evaluate(run_dir, args.history, config)
    except (InputError, FileExistsError, ValueError) as exc:
        return 2, [f"ERROR {exc}"]
    lines = [f.line() for f in result.findings]
    n_reg = sum(f.level is Level.REGRESSION for f in result.findings)
    n_warn = sum(f.level is Level.WARN for f in result.findings)
    lines.append(
        f"nightly {'FAIL' if n_reg else 'PASS'}: {n_reg} regressions, {n_warn} first-night "
        f"warnings against {len(result.history_used)} earlier runs; report {page}"
    )
    return result.exit_code, lines


add_cli = add_parser  # picked up by harness.cli (EXTENSIONS)
