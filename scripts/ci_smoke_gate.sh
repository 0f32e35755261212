#!/usr/bin/env bash
# CI step after the tests: run the smoke suite on CPU and gate it against the committed CPU
# baseline (deterministic metrics exactly; latency is not gated on CPU).
# Exit: 0 pass, 1 regression, 2 unusable input (the gate's codes), or the run's own error.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BASELINE=${BASELINE:-results/baselines/cpu.parquet}
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/cleanpass-smoke.XXXXXX")
"$PY" -m harness run --suite smoke --device cpu --out "$run_dir" --no-progress
rc=$?
# 1 = some rows failed validation: the gate decides whether that is new (ok turned false).
if [ "$rc" -gt 1 ]; then
  echo "ci_smoke_gate: smoke run failed (exit $rc)" >&2
  exit "$rc"
fi
"$PY" -m harness gate --baseline "$BASELINE" --run "$run_dir"
rc=$?
"$PY" -m harness report --run "$run_dir" --against "$BASELINE" >/dev/null || true
echo "ci_smoke_gate: run and report in $run_dir (gate exit $rc)"
exit "$rc"
