#!/usr/bin/env bash
# CI check after the tests and the gated smoke run: they must leave the checkout as it was.
# Tests write only to temporary folders; local runs (make bench, make smoke, harness run without
# --out) go to results/local/, which git ignores. `git status` does not show empty directories,
# so the run folders under results/runs/ (only runs someone committed, via `harness keep`) are
# compared with the committed ones explicitly.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
dirty=$(git status --porcelain --untracked-files=all)
if [ -n "$dirty" ]; then
  echo "check_clean_checkout: the run changed the checkout:" >&2
  echo "$dirty" >&2
  status=1
fi
committed=$(git ls-files results/runs | cut -d/ -f3 | sort -u)
for dir in results/runs/*/; do
  [ -d "$dir" ] || continue
  name=$(basename "$dir")
  if ! grep -qxF "$name" <<<"$committed"; then
    echo "check_clean_checkout: uncommitted run directory results/runs/$name" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "check_clean_checkout: checkout clean"
exit "$status"
