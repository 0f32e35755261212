#!/usr/bin/env bash
# Land what one scripts/gpu_check.sh lease brought back, so a session with a GPU spends its
# minutes measuring, not filing: land_gpu_night.sh DIR (the folder holding night.tgz and logs).
#
#   results/runs/<utc>_<gpu>-night/        the merged night (headline + rest), its report, and
#                                          device_log.txt (summary.txt, then every stage log)
#   results/runs/<utc>_<gpu>-kernels/      the kernel suite, where it ran
#   results/runs/<utc>_<gpu>-attribution/  the attribution run and its report, where it ran
#   results/baselines/<gpu>.parquet        the night's baseline (replaced: the latest night)
#
# Refuses to overwrite a run directory. LAND_ROOT puts results/ elsewhere (tests).
set -euo pipefail
src=${1:?usage: scripts/land_gpu_night.sh DIR_WITH_NIGHT_TGZ}
root=${LAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PY:-python3}
[ -f "$src/night.tgz" ] || { echo "land_gpu_night: no night.tgz in $src" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar xzf "$src/night.tgz" -C "$tmp"
[ -f "$tmp/night/env.json" ] || { echo "land_gpu_night: night.tgz holds no merged night (the gate stage did not run?)" >&2; exit 2; }

baseline=$(find "$tmp" -maxdepth 1 -name 'baseline_*.parquet' | head -n1)
gpu=$(basename "${baseline:-baseline_unknown-gpu.parquet}" .parquet)
gpu=${gpu#baseline_}
stamp=$("$PY" -c 'import json, sys, datetime as d
utc = json.load(open(sys.argv[1]))["utc"]
print(d.datetime.fromisoformat(utc.replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%SZ"))' "$tmp/night/env.json")

runs="$root/results/runs"
mkdir -p "$runs" "$root/results/baselines"
parts=()
for part in night kernels attribution; do
  [ -f "$tmp/$part/env.json" ] || continue
  dest="$runs/${stamp}_${gpu}-$part"
  [ -e "$dest" ] && { echo "land_gpu_night: $dest exists; not overwriting" >&2; exit 1; }
  parts+=("$part")
done
for part in "${parts[@]}"; do  # checked all first: nothing lands half
  cp -r "$tmp/$part" "$runs/${stamp}_${gpu}-$part"
  echo "landed $runs/${stamp}_${gpu}-$part"
done
log="$runs/${stamp}_${gpu}-night/device_log.txt"
for f in "$src/summary.txt" "$src"/*.log; do
  [ -f "$f" ] || continue
  { echo "===== $(basename "$f")"; cat "$f"; } >>"$log"
done
if [ -n "$baseline" ]; then
  cp "$baseline" "$root/results/baselines/$gpu.parquet"
  echo "landed $root/results/baselines/$gpu.parquet"
fi
