#!/usr/bin/env bash
# Builds .venv-peer: the CPU build of torch 2.13.0, vLLM 0.33.0 (its wheel, without its CUDA
# dependencies) with the pure-Python packages its import and its test conftests need, and this
# project; then fetches vLLM's source distribution for its IR-pipeline tests. Never touches
# .venv. Idempotent (a stamp file).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PEER=${PEER:-.venv-peer}
VLLM_VERSION=0.33.0
VLLM_SDIST_SHA256=f4c33c2503d52bb411146afa9618a4f48bed68912f617e6803ac8d76e4c74112
STAMP="$PEER/.installed-vllm-$VLLM_VERSION"
if [ -f "$STAMP" ] && [ "$STAMP" -nt scripts/peer_env.sh ] && [ "$STAMP" -nt scripts/peer-requirements.txt ] \
    && [ "$STAMP" -nt pyproject.toml ]; then
  exit 0
fi
test -x "$PEER/bin/python" || "$PY" -m venv "$PEER"
pip=("$PEER/bin/python" -m pip install -q)
"${pip[@]}" torch==2.13.0
"${pip[@]}" -r scripts/peer-requirements.txt
"${pip[@]}" --no-deps "vllm==$VLLM_VERSION"
"${pip[@]}" -e '.[test]'
archive=$("$PEER/bin/python" scripts/fetch_sdist.py vllm "$VLLM_VERSION" "$VLLM_SDIST_SHA256" "$PEER/sdist")
rm -rf "$PEER/vllm-src"
mkdir -p "$PEER/vllm-src"
# vLLM's IR-pipeline tests and what they import on the way (conftests, the test backend,
# the helpers the root conftest imports); scripts/peer_ir_tests.py runs them.
src_files=(tests/__init__.py tests/conftest.py tests/ci_envs.py tests/models/__init__.py
  tests/models/utils.py tests/models/registry.py tests/compile/__init__.py tests/compile/backend.py
  tests/compile/conftest.py tests/compile/passes/__init__.py tests/compile/passes/conftest.py
  tests/compile/passes/ir)
tar -xzf "$archive" -C "$PEER/vllm-src" --strip-components=1 "${src_files[@]/#/vllm-$VLLM_VERSION/}"
VLLM_TARGET_DEVICE=cpu "$PEER/bin/python" -c \
  "from vllm.compilation.passes.ir.clone_elimination import UnsafeCloneEliminationPass"
touch "$STAMP"
