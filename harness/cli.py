"""``python -m harness <command>``: the only harness module that prints.

Each subcommand is registered by one small function ``add_<name>(subparsers)`` that adds its
parser and sets ``func``; ``func(args)`` returns an exit code or ``(exit code, lines)``, and
this module prints the lines. Other modules add theirs without editing this file: a module
listed in ``EXTENSIONS`` that defines ``add_cli(subparsers)`` is registered automatically when
it exists (``harness.gate``, ``harness.baseline``,
``harness.nightly``, ``harness.report``). To add one by hand, append its function to
``COMMANDS``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from typing import Callable, Sequence

log = logging.getLogger(__name__)

EXTENSIONS = ("harness.gate", "harness.baseline", "harness.nightly", "harness.report")


# ---- run ---------------------------------------------------------------------------------

def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a benchmark suite and write a run directory")
    p.add_argument("--suite", choices=("smoke", "default", "nightly"), default="smoke")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--workloads", nargs="+", metavar="NAME", help="only these workloads")
    p.add_argument("--dtypes", nargs="+", metavar="DTYPE", help="only these dtypes (bfloat16, float16, float32)")
    p.add_argument("--tokens", nargs="+", type=int, metavar="N", help="token counts instead of the suite's")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="only these variants")
    p.add_argument("--shard", metavar="K/N", help="run only shard K of N of the case matrix")
    p.add_argument("--out", metavar="DIR", help="run directory (default results/runs/<utc>_<commit>/)")
    p.add_argument("--results-root", default="results/runs", help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_run)


def _split(values: Sequence[str] | None) -> list[str] | None:
    """Accept both ``--x a b`` and ``--x a,b``."""
    if not values:
        return None
    return [v for item in values for v in str(item).split(",") if v]


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
        if self.tty:
            sys.stderr.write("\r" + line[:150].ljust(150) + ("\n" if done == total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _sigterm_as_interrupt() -> None:
    """``timeout``/schedulers send SIGTERM: turn it into KeyboardInterrupt so finished rows get written."""
    import signal

    def handler(signum, frame):  # noqa: ANN001
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


def cmd_run(args: argparse.Namespace) -> int:
    from harness import api, summary

    _sigterm_as_interrupt()

    try:
        result = api.run(suite=args.suite, device=args.device, workloads=_split(args.workloads),
                         dtypes=_split(args.dtypes), tokens=args.tokens, variants=_split(args.variants),
                         shard=args.shard, out=args.out, results_root=args.results_root,
                         progress=ProgressLine(enabled=not args.no_progress))
    except (ValueError, KeyError, FileExistsError, RuntimeError) as e:
        print(f"harness run: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness run: interrupted before any case finished", file=sys.stderr)
        return 130
    df = result.results
    if result.env.get("interrupted"):
        print("harness run: INTERRUPTED; the run directory holds the cases that finished", file=sys.stderr)
    print()
    print(f"run: {result.run_dir}")
    print(f"device: {result.env['device']} ({result.env['device_name']}), measured copy bandwidth "
          f"{result.env['peak_gbps_measured'] or float('nan'):.1f} GB/s, suite {args.suite}, "
          f"{len(df)} rows in {result.seconds:.0f}s")
    print(summary.format_summary(summary.summarize(df)))
    failed = df[~df["ok"]]
    if len(failed):
        print(f"\n{len(failed)} failed rows:")
        for r in failed.head(20).itertuples():
            print(f"  {r.workload} {r.dtype} t={r.num_tokens} h={r.hidden} {r.variant}: {r.error[:200]}")
    # vllm is the reference pass with known holes: its failures are findings, not run failures
    real = failed[failed["variant"] != "vllm"]
    if result.env.get("interrupted"):
        return 130
    return 1 if len(real) else 0


# ---- merge -------------------------------------------------------------------------------

def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="join shard run directories into one run directory")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--out", metavar="DIR", help="merged run directory (default results/runs/<utc>_<commit>/)")
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from harness import env as envmod, results, shard

    try:
        out = shard.merge_runs(args.dirs, lambda: (
            results.claim_out_dir(args.out) if args.out
            else results.new_run_dir("results/runs", envmod.git_commit()[0])))
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"harness merge: {e}", file=sys.stderr)
        return 2
    df = results.read_run(out)[0]
    print(f"merged {len(args.dirs)} runs, {len(df)} rows -> {out}")
    return 0


# ---- wiring ------------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_run, add_merge]


def _extension_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    found = []
    for name in EXTENSIONS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                log.warning("cannot import %s: %s", name, e)
            continue
        except Exception as e:  # noqa: BLE001 - a broken extension must not break `run`
            log.warning("cannot import %s: %s", name, e)
            continue
        add = getattr(mod, "add_cli", None)
        if callable(add):
            found.append(add)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS + _extension_commands():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    out = args.func(args)
    if isinstance(out, tuple):  # (exit code, lines): gate/baseline/nightly/report leave printing here
        code, lines = out
        for line in lines:
            print(line)
        return int(code)
    return int(out or 0)
