"""Validation cannot be fooled by memory a kernel leaves unwritten: every fresh allocation the
variant's code makes during the validation call comes back poisoned (NaN), compiled (Inductor's
wrapper allocators) and eager (a dispatch mode) alike, and timing runs the plain allocators.
"""
from __future__ import annotations

import contextlib
import math
from typing import Optional

import pytest
import torch

from harness.run import api, compat, suites, variants
from workloads.models import _common as C
from workloads.models.rms_norm import RmsNorm

SKIPS_TAIL = "harness_test_skips_tail"
TAIL = 4  # rows the broken kernel leaves unwritten
# > 32 MiB of fp32 output: glibc serves it with fresh (zeroed) pages, so without poisoning the
# unwritten rows read as zeros, which is exactly what they should hold (their input rows are 0)
TOKENS, HIDDEN = 2304, 4096


@torch.library.custom_op("harness_test::rms_norm_skips_tail_out", mutates_args=("x_out",))
def _rms_norm_skips_tail_out(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float,
                             x_out: torch.Tensor) -> None:
    """A wrong out-of-place kernel: its grid stops TAIL rows short of the end."""
    from workloads.ir.rms_norm import rms_norm_native

    x_out[:-TAIL].copy_(rms_norm_native(x[:-TAIL], weight, eps))


@torch.library.custom_op("harness_test::rms_norm_whole_", mutates_args=("x",))
def _rms_norm_whole_(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    from workloads.ir.rms_norm import rms_norm_native

    x.copy_(rms_norm_native(x, weight, eps))


for _kernel in (_rms_norm_skips_tail_out, _rms_norm_whole_):
    _kernel.register_fake(lambda *args: None)


class _ZeroTail(RmsNorm):
    """rms_norm whose last TAIL input rows are zero: their right output is zero too."""

    def build(self, shape, dtype, device):  # noqa: ANN001
        built = super().build(shape, dtype, device)
        built.inputs[0][-TAIL:] = 0.0
        return built


@pytest.fixture()
def skips_tail_provider():
    from workloads.ir.registry import OPS, Impl, register_impl

    impl = Impl(SKIPS_TAIL, torch.ops.harness_test.rms_norm_whole_.default, inplace=True, priority=-1000,
                writes=(0,), outputs=(0,), out_of_place=torch.ops.harness_test.rms_norm_skips_tail_out.default)
    register_impl("rms_norm", impl)
    yield
    OPS["rms_norm"].impls.remove(impl)


def _folding_variant():
    """cleanpass folds the kept clone of the (non-donated) input: the broken out-of-place form
    writes a buffer the generated wrapper allocates."""
    def make():
        from workloads import pipeline

        return pipeline.compile_fn(variants.apply, policy="sound", providers=(SKIPS_TAIL,), dynamic=False)
    return variants.compiled_builder("skips_tail", make, lambda ctx: ctx.built.fn, donates=True)


def _run(tmp_path, name: str):  # noqa: ANN001
    workload = _ZeroTail(name="rms_norm_zero_tail", description="test only",
                         suite_shapes={"smoke": C.grid(["llama-3.1-8b"], [TOKENS])})
    with variants.extra_variants({"skips_tail": _folding_variant()}):
        result = api.run(suite="smoke", device="cpu", workloads=[workload.name], variants=["eager", "skips_tail"],
                         out=tmp_path / name, plan=suites.PLANS["test"], catalog={workload.name: workload})
    return result.results.set_index("variant")


@pytest.mark.slow
def test_a_kernel_leaving_its_fresh_output_partly_unwritten_fails_validation(tmp_path, monkeypatch,
                                                                            skips_tail_provider):
    rows = _run(tmp_path, "poisoned")
    broken = rows.loc["skips_tail"]
    assert broken["clones_after"] == 0 and broken["bytes_decided"] > 0  # the clone was folded
    assert not broken["ok"] and f"output 0: {TAIL * HIDDEN} NaN" in broken["error"]
    assert rows.loc["eager", "ok"], rows.loc["eager", "error"]
    # the same run without poisoning: the unwritten rows hold zeros and the kernel passes
    monkeypatch.setattr(compat, "poisoned_wrapper_allocations", lambda modules, poison: contextlib.nullcontext(0))
    unpoisoned = _run(tmp_path, "plain").loc["skips_tail"]
    assert unpoisoned["ok"], unpoisoned["error"]


def test_wrapper_allocators_are_poisoned_inside_the_block_and_restored_after():
    import types

    module = types.ModuleType("fake_wrapper")
    module.empty_strided_cpu = lambda size, stride, dtype: torch.zeros(size, dtype=dtype)
    original = module.empty_strided_cpu
    with compat.poisoned_wrapper_allocations([module, module], lambda t: t.fill_(math.nan)) as wrapped:
        assert wrapped == 1
        assert torch.isnan(module.empty_strided_cpu((3,), (1,), torch.float32)).all()
    assert module.empty_strided_cpu is original
    assert not torch.isnan(module.empty_strided_cpu((3,), (1,), torch.float32)).any()


def test_eager_variants_validate_with_poisoned_allocations():
    from workloads import catalog

    wl = catalog.get("rms_norm")
    shape = wl.shapes("smoke")[0]
    built = wl.build(shape, torch.float32, "cpu")
    ctx = variants.Context(workload="rms_norm", built=built, pristine=built.inputs, num_tokens=shape.num_tokens,
                           hidden=shape.hidden, group_key="g", device="cpu", cache=None)
    prep = variants.registered()["ideal"].builder(ctx)
    with prep.poisoned():
        assert torch.isnan(torch.empty(4)).all() and torch.isnan(torch.empty_like(built.inputs[0])).all()
    assert not torch.isnan(prep.call()).any()
