"""`make vllm`: cleanpass in vLLM's own compile pipeline, side by side with vLLM's pass.

Runs `harness run --suite vllm` (every model of vLLM's IR ops through `VllmBackend`, each arm of
the clone slot) into a run directory and prints the side-by-side table: per model and dtype,
clones after lowering, what vLLM's pass and cleanpass leave, copies in the generated code and
whether each pass's numerics held. Exits non-zero when a cleanpass row failed.
Usage (in .venv-peer): python scripts/vllm_pipeline.py [--dtypes float32 ...] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", nargs="+", default=None, help="default: float32 bfloat16")
    parser.add_argument("--models", nargs="+", default=None, help="default: all")
    parser.add_argument("--out", default=None, help="run directory (default: a new one in results/local)")
    args = parser.parse_args()

    from harness.run import api, vllm_backend

    result = api.run(suite=vllm_backend.SUITE, device="cpu", workloads=args.models, dtypes=args.dtypes,
                     out=args.out)
    df, env = result.results, result.env
    print(f"vLLM {env.get('vllm')} (VllmBackend), torch {env.get('torch')}, {env.get('device_name')}: "
          f"{len(df)} rows in {result.seconds:.0f} s")
    print("\n".join(vllm_backend.side_by_side(df)))
    print(f"results: {result.run_dir}")
    skipped = df[df["status"] == "skipped"]
    if len(skipped) == len(df):
        print(f"every row skipped: {skipped['error'].iloc[0]}")
        return 1
    ours = df[df["variant"].isin(["cleanpass", "cleanpass_nofold"]) & (df["status"] != "skipped")]
    failed = ours[~ours["ok"]]
    for row in failed.itertuples():
        print(f"FAILED {row.workload}/{row.variant}/{row.dtype}: {row.error}")
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
