"""Triton kernels and the Triton lowering: natively on CUDA, under TRITON_INTERPRET=1 on CPU.

Each CUDA test has a CPU twin that runs the same routine (``workloads.kernels.check`` /
``workloads.selfcheck``) in a subprocess with the interpreter, on small shapes.
"""
from __future__ import annotations

import pytest
import torch

from workloads import catalog

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# The reference stack's kernel test grid (docs/reference-pass.md).
GPU_TOKENS = [1, 8, 17, 32, 512, 2048]
GPU_HIDDEN = [2048, 4096, 5120, 7168, 8192]
GPU_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _no_problems(proc) -> None:  # noqa: ANN001
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.mark.slow
def test_triton_kernels_match_reference_interpreted(run_interpreted) -> None:  # noqa: ANN001
    """Includes the in-place kernels on strided and offset views (check_in_place_layouts)."""
    _no_problems(run_interpreted("workloads.kernels.check", "--providers", "triton", "--tokens", "1,17",
                                 "--hidden", "256", "--dtypes", "float32,bfloat16,float16", timeout=420))


@pytest.mark.cuda
@cuda
def test_triton_kernels_match_reference_cuda() -> None:
    from workloads.kernels.check import check_kernels

    assert check_kernels("cuda", ["triton", "torch"], GPU_TOKENS, GPU_HIDDEN, GPU_DTYPES) == []


@pytest.mark.slow
def test_triton_lowering_interpreted(run_interpreted) -> None:  # noqa: ANN001
    """Compiled with the Triton provider and cleanpass: matches the reference; clone counts
    before and after the pass as expected (the CPU twin of the CUDA test below). llama_block:
    the Triton rotary kernel writes the strided q/k views of qkv in place."""
    _no_problems(run_interpreted("workloads.selfcheck", "--workloads", "fused_add_rms_norm,rotary_views,llama_block",
                                 "--providers", "triton", "--variants", "cleanpass"))


@pytest.mark.cuda
@pytest.mark.slow
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_triton_lowering_cuda(dtype: torch.dtype) -> None:
    from workloads import selfcheck

    problems = selfcheck.check_workloads(sorted(catalog.all_workloads()), device="cuda", dtype=dtype,
                                         variants=("lowered", "vllm", "cleanpass"))
    assert problems == []
