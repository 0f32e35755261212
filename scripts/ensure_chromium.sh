#!/usr/bin/env bash
# Make sure headless Chromium is available for the report browser test (tests marked `browser`).
# Installs Debian's `chromium` package when missing; needs root (CI images run as root).
# Exit 0 when `chromium` is on PATH afterwards, 1 otherwise.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_chromium: chromium is missing and installing it needs root (apt-get install chromium)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1
