#!/usr/bin/env bash
# One GPU lease, one script, at most 8 minutes: versions, the headline workloads (the ones issue
# figures are quoted on: fused add + RMSNorm and RMSNorm at 70B, llama_block, rotary_views;
# bf16, up to 16384 tokens; first, so a lease cut short still has them), the CUDA tests, the
# rest of the nightly suite (the other workloads, then the headline's fp16 cases; token counts
# trimmed, never the dtypes), the kernel suite, kernel attribution, then an A/A gate of the
# night against a baseline made from itself.
#
# The CUDA tests print one line per test (-v), so a cut run still says which passed.
# Every stage runs under its own time cap with its own log ($OUT/<stage>.log); a failing or
# cut-short stage never stops the next, and a cut harness run keeps the cases it finished
# (largest token count first). $OUT ends with at most 8 files (what a lease brings back):
# summary.txt (versions + one line per stage), six stage logs, night.tgz (the run directories,
# the baseline named by GPU model, the report), refreshed after every stage.
#
# Run from the repo root with torch + Triton installed and no network: PYTHONPATH=. is set here.
#   OUT=/some/dir bash scripts/gpu_check.sh
# Knobs: PY (python), HEADLINE (its workloads), HEADLINE_TOKENS, TOKENS (the rest's token
# counts), <STAGE>_S caps in seconds, WORK (scratch).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d -t cleanpass-gpu.XXXXXX)}
PY=${PY:-python3}
HEADLINE=${HEADLINE:-"fused_add_rms_norm llama_block rms_norm rotary_views"}
HEADLINE_TOKENS=${HEADLINE_TOKENS:-"1 4096 16384"}
TOKENS=${TOKENS:-"1 4096"}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cleanpass-night.XXXXXX")}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=. PYTHONUNBUFFERED=1
summary="$OUT/summary.txt"
t_start=$(date +%s)

note() { echo "$*" | tee -a "$summary"; }

pack() {  # everything a later reader needs, in one file
  tar czf "$OUT/night.tgz.tmp" -C "$WORK" . 2>/dev/null && mv -f "$OUT/night.tgz.tmp" "$OUT/night.tgz"
}

# stage NAME CAP_S COMMAND...: run under `timeout`, log kept even when cut short
stage() {
  local name=$1 cap=$2 t0 rc
  shift 2
  t0=$(date +%s)
  echo "== $name (cap ${cap}s) $(date -u +%FT%TZ)" >"$OUT/$name.log"
  # timeout signals the whole process group, so a harness run below a function still gets
  # SIGTERM and writes the cases it finished
  timeout -k 5 "$cap" bash -c '"$@"' "$name" "$@" >>"$OUT/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 124 ] && echo "== $name: cut at its ${cap}s cap" >>"$OUT/$name.log"
  note "$(printf 'stage %-14s rc=%-4s %4ss' "$name" "$rc" "$(( $(date +%s) - t0 ))")"
  pack
  return 0
}

gpu_slug() {  # "NVIDIA H100 80GB HBM3" -> h100-80gb-hbm3
  local name
  name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
  name=$(echo "${name:-unknown gpu}" | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')
  echo "${name:-unknown-gpu}"
}

run_suite() {  # run_suite OUTDIR ARGS...: the harness run, CUDA, no progress line
  local dir=$1
  shift
  exec "$PY" -m harness run --device cuda --no-progress --out "$dir" "$@"
}

# shellcheck disable=SC2086  # HEADLINE and TOKENS are lists
rest_of_night() {  # the other workloads in both dtypes, then the headline's fp16 cases
  "$PY" -m harness run --device cuda --no-progress --out "$WORK/nightly" --suite nightly \
    --dtypes bfloat16 float16 --tokens $TOKENS --skip-workloads $HEADLINE
  local rc=$?
  "$PY" -m harness run --device cuda --no-progress --out "$WORK/headline_fp16" --suite nightly \
    --dtypes float16 --tokens $TOKENS --workloads $HEADLINE || rc=$?
  return "$rc"
}

judge_night() {  # merge the night's parts, freeze a baseline, gate the night against it (A/A), report
  local night="$WORK/night" base="$WORK/baseline_$(gpu_slug).parquet" parts=()
  for d in "$WORK/headline" "$WORK/nightly" "$WORK/headline_fp16"; do
    [ -f "$d/env.json" ] && parts+=("$d")
  done
  echo "complete nightly parts: ${parts[*]:-none}"
  if ! "$PY" -m harness merge "${parts[@]}" --out "$night"; then
    [ -f "$WORK/headline/env.json" ] && "$PY" -m harness report --run "$WORK/headline"  # its Headline at least
    return 1
  fi
  "$PY" -m harness baseline --run "$night" --out "$base" || return $?
  "$PY" -m harness gate --baseline "$base" --run "$night"
  local rc=$?
  "$PY" -m harness report --run "$night" --against "$base" || true
  [ -f "$WORK/attribution/env.json" ] && { "$PY" -m harness report --run "$WORK/attribution" || true; }
  echo "A/A gate exit $rc (0 expected: a run cannot regress against itself)"
  return "$rc"
}

export PY WORK HEADLINE TOKENS
export -f gpu_slug run_suite rest_of_night judge_night
: >"$summary"
{
  echo "== versions $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  timeout 30 "$PY" -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null) dirty=$(git status --porcelain 2>/dev/null | grep -c .)"
  echo "headline: $HEADLINE at $HEADLINE_TOKENS tokens; the rest at $TOKENS; work dir $WORK"
} 2>&1 | tee -a "$summary"

# shellcheck disable=SC2086  # HEADLINE, TOKENS and HEADLINE_TOKENS are lists
stage headline "${HEADLINE_S:-160}" run_suite "$WORK/headline" --suite nightly --dtypes bfloat16 \
  --tokens $HEADLINE_TOKENS --workloads $HEADLINE
stage cuda_tests "${CUDA_TESTS_S:-55}" "$PY" -m pytest -m cuda -v -p no:cacheprovider -o addopts="" \
  --continue-on-collection-errors tests
stage nightly "${NIGHTLY_S:-90}" rest_of_night
stage kernels "${KERNELS_S:-35}" run_suite "$WORK/kernels" --suite kernels
stage attribution "${ATTRIBUTION_S:-40}" run_suite "$WORK/attribution" --suite nightly --dtypes bfloat16 \
  --tokens 4096 --workloads donated_chain llama_block rotary_views --variants native lowered cleanpass ideal \
  --attribution
stage gate "${GATE_S:-30}" judge_night
# The headline table into summary.txt (the lease's reply shows its tail): from the night's
# report, or, where the merge failed, from the headline run's own (judge_night wrote it).
for report in "$WORK/night/report.md" "$WORK/headline/report.md"; do
  [ -f "$report" ] || continue
  sed -n '/^## Headline/,/^## [^H]/p' "$report" | sed '$d' | tee -a "$summary"
  pack
  break
done
note "total $(( $(date +%s) - t_start ))s; files: $(ls "$OUT" | tr '\n' ' ')"
