"""A deliberately broken variant is caught as ok=False and does not stop the run.

Injected through the hooks, never by editing library code: a wrong in-place kernel registered
as a workload provider (so the compiled graph really calls it), and variants registered with
``harness.run.variants.extra_variants`` that raise, or write an input they do not own.
"""
from __future__ import annotations

from typing import Optional

import pytest
import torch

from harness.run import api
from harness.run import suites
from harness.run import validate
from harness.run import variants

BROKEN_PROVIDER = "harness_test_broken"


@torch.library.custom_op("harness_test::rms_norm_misses_last_row_", mutates_args=("x",))
def _rms_norm_misses_last_row_(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float) -> None:
    """A wrong kernel: normalises every row but the last (like an off-by-one grid)."""
    from workloads.ir.rms_norm import rms_norm_native

    x[:-1].copy_(rms_norm_native(x[:-1], weight, eps))


@pytest.fixture()
def broken_provider():
    from workloads.ir.registry import OPS, Impl, register_impl

    impl = Impl(BROKEN_PROVIDER, torch.ops.harness_test.rms_norm_misses_last_row_.default, inplace=True,
                priority=-1000, writes=(0,), outputs=(0,))
    register_impl("rms_norm", impl)
    yield
    OPS["rms_norm"].impls.remove(impl)


def _wrong_kernel_variant():
    def make():
        from workloads import pipeline

        return pipeline.compile_fn(variants.apply, policy="sound", providers=(BROKEN_PROVIDER,), dynamic=False)
    return variants.compiled_builder("wrong_kernel", make, lambda ctx: ctx.built.fn, donates=True)


def _raises(ctx):
    inputs = ctx.fresh_inputs()

    def call():
        raise RuntimeError("kernel launch failed")
    return variants.Prepared(call=call, inputs=inputs)


def _writes_input(ctx):
    inputs = ctx.fresh_inputs()

    def call():
        out = ctx.built.native_fn(*inputs)
        inputs[0].add_(1.0)  # scribbles on an input nobody donated
        return out
    return variants.Prepared(call=call, inputs=inputs)


def test_broken_variants_fail_their_rows_and_the_run_goes_on(tmp_path, broken_provider):
    extra = {"wrong_kernel": _wrong_kernel_variant(), "raises": _raises, "writes_input": _writes_input}
    with variants.extra_variants(extra):
        result = api.run(suite="smoke", device="cpu", workloads=["rms_norm"], tokens=[8, 3],
                         variants=["eager", "lowered", "wrong_kernel", "raises", "writes_input", "ideal"],
                         out=tmp_path / "run", plan=suites.PLANS["test"])
    assert "wrong_kernel" not in variants.variant_names()  # the hook cleaned up
    df = result.results.set_index(["num_tokens", "variant"])
    assert len(df) == 2 * 6
    for t in (8, 3):
        wrong = df.loc[(t, "wrong_kernel")]
        assert not wrong["ok"] and wrong["numerics"] == validate.Verdict.FAIL.value
        assert "numerics vs float64 reference" in wrong["error"] and f"({t - 1}, " in wrong["error"]
        assert wrong["bitwise_equal"] == False  # noqa: E712  (differs from lowered)
        assert wrong["latency_us_p50"] > 0  # it ran, so it is still timed
        raises = df.loc[(t, "raises")]
        assert not raises["ok"] and "kernel launch failed" in raises["error"]
        writes = df.loc[(t, "writes_input")]
        assert not writes["ok"] and "non-donated inputs written: positions [0]" in writes["error"]
        for good in ("eager", "lowered", "ideal"):
            assert df.loc[(t, good), "ok"], df.loc[(t, good), "error"]
            assert df.loc[(t, good), "latency_us_p50"] > 0
    assert (result.run_dir / "results.parquet").is_file()


def test_unavailable_backend_is_a_skipped_row_not_an_error(tmp_path):
    with variants.extra_variants({}):
        variants.register_variant("needs_gpu", _raises, enabled=lambda ctx: "needs a GPU backend")
        try:
            result = api.run(suite="smoke", device="cpu", workloads=["rms_norm"], tokens=[4],
                             variants=["eager", "needs_gpu"], out=tmp_path / "run", plan=suites.PLANS["test"])
        finally:
            variants.unregister_variant("needs_gpu")
    row = result.results.set_index("variant").loc["needs_gpu"]
    assert row["ok"] and row["status"] == "skipped" and row["error"] == "skipped: needs a GPU backend"
    assert row["latency_us_p50"] != row["latency_us_p50"]  # NaN: not timed


def test_a_workload_that_fails_to_build_becomes_failed_rows(tmp_path):
    class Broken:
        name = "broken"

        def shapes(self, suite):
            from workloads.catalog import Shape

            return [Shape(4, 64, "")]

        def dtypes(self, suite):
            return [torch.float32]

        def build(self, shape, dtype, device):
            raise ValueError("no such model")

        def model_bytes(self, shape, dtype):
            return 0

    cat = dict(api.load_workloads())
    cat["broken"] = Broken()
    result = api.run(suite="smoke", device="cpu", workloads=["broken", "rms_norm"], tokens=[4],
                     variants=["eager", "ideal"], out=tmp_path / "run", plan=suites.PLANS["test"], catalog=cat)
    df = result.results
    assert (~df[df["workload"] == "broken"]["ok"]).all()
    assert df[df["workload"] == "broken"]["error"].str.startswith("build: ValueError: no such model").all()
    assert df[df["workload"] == "rms_norm"]["ok"].all()


def test_a_workload_missing_an_optional_package_becomes_skipped_rows(tmp_path, monkeypatch):
    """Availability is data: without transformers the real-model workloads are skipped rows
    that carry the reason, never an import error or a failed run."""
    from workloads import hf

    monkeypatch.setattr(hf, "unavailable", lambda: "transformers is not installed")
    result = api.run(suite="default", device="cpu", workloads=["hf_qwen2"], tokens=[4],
                     variants=["eager", "cleanpass"], out=tmp_path / "run", plan=suites.PLANS["test"])
    df = result.results
    assert len(df) == 2 and (df["status"] == "skipped").all() and df["ok"].all()
    assert (df["error"] == "skipped: transformers is not installed").all()
