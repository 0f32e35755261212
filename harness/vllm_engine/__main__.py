"""`python -m harness.vllm_engine`: vLLM's engine on tiny models, arm by arm, into a run directory.

Exit codes: 0 every row passed; 1 a row other than vLLM's own pass failed; 2 bad arguments.
Without a vLLM environment every row is skipped with the reason, and the exit code is 0.
"""
from __future__ import annotations

import argparse
import sys

from harness.store import results
from harness.vllm_engine import arms as armmod
from harness.vllm_engine import check
from harness.vllm_engine import rows as rowmod
from harness.vllm_engine.models import MODELS


def _split(values: list[str] | None, default: tuple[str, ...]) -> list[str]:
    if not values:
        return list(default)
    return [v for item in values for v in item.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.vllm_engine", description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", help=f"default: all ({', '.join(MODELS)})")
    p.add_argument("--dtypes", nargs="+", help=f"default: {' '.join(check.DTYPES)}")
    p.add_argument("--arms", nargs="+", help=f"of {', '.join(armmod.ARMS)}; default: "
                   f"{' '.join(armmod.DEFAULT_ARMS)} {check.SPAWNED}")
    p.add_argument("--reps", type=int, default=1, help="fresh engines per arm, alternating (default 1)")
    p.add_argument("--out", help="run directory (default results/local/<utc>_<commit>/)")
    p.add_argument("--spawned-everywhere", action="store_true",
                   help=f"run {check.SPAWNED} on every model and dtype (default: the first only)")
    p.add_argument("--python", help="the vLLM environment's interpreter (default: this one if it has "
                   "vLLM, else .venv-vllm-cpu/bin/python)")
    args = p.parse_args(argv)
    models = _split(args.models, tuple(MODELS))
    arms = _split(args.arms, armmod.DEFAULT_ARMS + (check.SPAWNED,))
    try:
        result = check.run_check(models, _split(args.dtypes, check.DTYPES), arms, reps=args.reps,
                                 out=args.out, python=args.python, spawned_everywhere=args.spawned_everywhere,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (ValueError, FileExistsError) as error:
        print(f"harness.vllm_engine: {error}", file=sys.stderr)
        return 2
    df = result.frame
    print(f"run: {result.run_dir} ({len(df)} rows, {result.seconds:.0f} s)")
    print(result.table)
    reference = {i.name for i in rowmod.declarations(arms) if i.reference}
    failed = df[(df["status"] == results.Status.FAIL.value) & ~df["variant"].isin(reference)]
    for r in failed.itertuples():
        print(f"FAILED {r.workload} {r.dtype} {r.variant}: {r.error}")
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
