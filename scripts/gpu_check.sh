#!/usr/bin/env bash
# One GPU lease, one script, at most 8 minutes: versions, the CUDA tests, the nightly suite in
# bf16 and fp16 (token counts trimmed, never the dtypes), the kernel suite, kernel attribution,
# then an A/A gate of the night against a baseline made from itself.
#
# The CUDA tests print one line per test (-v), so a cut run still says which passed.
# Every stage runs under its own time cap with its own log ($OUT/<stage>.log); a failing or
# cut-short stage never stops the next. $OUT ends with at most 8 files (what a lease brings
# back): summary.txt (versions + one line per stage), six stage logs, night.tgz (the run
# directories, the baseline named by GPU model, the report), refreshed after every stage.
#
# Run from the repo root with torch + Triton installed and no network: PYTHONPATH=. is set here.
#   OUT=/some/dir bash scripts/gpu_check.sh
# Knobs: PY (python), TOKENS (nightly token counts), <STAGE>_S caps in seconds, WORK (scratch).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d -t cleanpass-gpu.XXXXXX)}
PY=${PY:-python3}
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

judge_night() {  # merge the two dtypes, freeze a baseline, gate the night against it (A/A), report
  local night="$WORK/night" base="$WORK/baseline_$(gpu_slug).parquet" parts=()
  for d in "$WORK/nightly_bf16" "$WORK/nightly_fp16"; do
    [ -f "$d/env.json" ] && parts+=("$d")
  done
  echo "complete nightly parts: ${parts[*]:-none}"
  "$PY" -m harness merge "${parts[@]}" --out "$night" || return $?
  "$PY" -m harness baseline --run "$night" --out "$base" || return $?
  "$PY" -m harness gate --baseline "$base" --run "$night"
  local rc=$?
  "$PY" -m harness report --run "$night" --against "$base" || true
  [ -f "$WORK/attribution/env.json" ] && { "$PY" -m harness report --run "$WORK/attribution" || true; }
  echo "A/A gate exit $rc (0 expected: a run cannot regress against itself)"
  return "$rc"
}

export PY WORK
export -f gpu_slug run_suite judge_night
: >"$summary"
{
  echo "== versions $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  timeout 30 "$PY" -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null) dirty=$(git status --porcelain 2>/dev/null | grep -c .)"
  echo "tokens: $TOKENS; work dir $WORK"
} 2>&1 | tee -a "$summary"

# shellcheck disable=SC2086  # TOKENS is a list
stage cuda_tests "${CUDA_TESTS_S:-75}" "$PY" -m pytest -m cuda -v -p no:cacheprovider -o addopts="" \
  --continue-on-collection-errors tests
stage nightly_bf16 "${NIGHTLY_S:-100}" run_suite "$WORK/nightly_bf16" --suite nightly --dtypes bfloat16 --tokens $TOKENS
stage nightly_fp16 "${NIGHTLY_S:-100}" run_suite "$WORK/nightly_fp16" --suite nightly --dtypes float16 --tokens $TOKENS
stage kernels "${KERNELS_S:-50}" run_suite "$WORK/kernels" --suite kernels
stage attribution "${ATTRIBUTION_S:-60}" run_suite "$WORK/attribution" --suite nightly --dtypes bfloat16 \
  --tokens 4096 --workloads donated_chain llama_block rotary_views --variants native lowered cleanpass ideal \
  --attribution
stage gate "${GATE_S:-35}" judge_night
note "total $(( $(date +%s) - t_start ))s; files: $(ls "$OUT" | tr '\n' ' ')"
