#!/usr/bin/env bash
# One device lease, one script: versions, the CUDA tests, then the nightly suite (trimmed by
# SUITE_ARGS to fit the lease), all logged to $OUT/log.txt; a failing stage never stops the next.
# Run from the repo root on a machine with torch + Triton installed: PYTHONPATH=. and no install.
set -u
OUT=${OUT:-$(mktemp -d -t cleanpass-gpu.XXXXXX)}
mkdir -p "$OUT"
export PYTHONPATH=.
log="$OUT/log.txt"
{
  echo "== versions $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  python3 -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  git rev-parse --short HEAD 2>/dev/null
} >>"$log" 2>&1
echo "== cuda tests" >>"$log"
timeout "${CUDA_TESTS_S:-100}" python3 -m pytest -q -m cuda -o addopts="" -p no:cacheprovider --continue-on-collection-errors \
  tests/workloads tests/harness >>"$log" 2>&1
echo "== cuda tests rc=$?" >>"$log"
echo "== nightly suite" >>"$log"
# SIGTERM from timeout makes the harness write the cases it finished.
timeout "${SUITE_S:-200}" python3 -m harness run --suite nightly --device cuda --out "$OUT/run" \
  --no-progress ${SUITE_ARGS:-} >>"$log" 2>&1
echo "== nightly suite rc=$?" >>"$log"
rm -f "$OUT/run/benchmark.json"  # at most 8 files come back; the parquet/CSV/env carry the data
ls -la "$OUT" "$OUT/run" >>"$log" 2>&1
