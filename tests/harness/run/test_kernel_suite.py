"""``--suite kernels`` on CPU: every Triton kernel through the interpreter, on contiguous, strided
and offset views, correctness only (no timings); and the checks that would catch a bad kernel."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from harness.judge.gate import GateConfig, gate
from harness.run import api, kernel_suite
from harness.store.baseline import load_baseline, load_run, write_baseline
from harness.store import results
from workloads.ir import OPS
from workloads.ir.samples import sample_args


def test_layouts_are_what_they_say():
    args = sample_args("rms_norm", 3, 256, torch.float32)
    contiguous = kernel_suite.place(args, OPS["rms_norm"].activations, "contiguous").args[0]
    strided = kernel_suite.place(args, OPS["rms_norm"].activations, "strided").args[0]
    offset = kernel_suite.place(args, OPS["rms_norm"].activations, "offset").args[0]
    assert contiguous.is_contiguous() and contiguous.data_ptr() != args[0].data_ptr()
    assert strided.stride() == (256 + kernel_suite.PAD, 1) and strided.storage_offset() == 0
    assert offset.stride(0) > 256 and offset.storage_offset() > 0
    for t in (contiguous, strided, offset):
        assert torch.equal(t, args[0])


def test_byte_models():
    x = torch.zeros(4, 8, dtype=torch.bfloat16)
    w = torch.zeros(8, dtype=torch.bfloat16)
    assert kernel_suite.kernel_bytes("rms_norm", (x, w, 1e-6)) == 2 * 64 + 16
    assert kernel_suite.kernel_bytes("fused_add_rms_norm", (x, x, w, 1e-6)) == 4 * 64 + 16
    assert kernel_suite.kernel_bytes("silu_and_mul", (torch.zeros(4, 16, dtype=torch.bfloat16),)) == 128 + 64
    assert kernel_suite.kernel_bytes("unknown_op", (x,)) is None


def _torch_rms_norm():
    return next(i for i in OPS["rms_norm"].impls if i.provider == "torch" and i.inplace)


def test_a_kernel_writing_past_its_view_is_caught():
    good = _torch_rms_norm()

    def spill(x, weight, eps):  # noqa: ANN001 - correct result, plus one element past row 0
        good.kernel(x, weight, eps)
        torch.as_strided(x, (1,), (1,), x.storage_offset() + x.shape[1]).fill_(0.0)

    bad = SimpleNamespace(provider="bad", inplace=True, outputs=(0,), kernel=spill)
    args = sample_args("rms_norm", 3, 256, torch.float32)
    placed = kernel_suite.place(args, OPS["rms_norm"].activations, "offset")
    problems, _ = kernel_suite.check_call("rms_norm", bad, placed)
    assert problems == ["wrote outside its view"]
    fine, err = kernel_suite.check_call("rms_norm", good, kernel_suite.place(args, OPS["rms_norm"].activations,
                                                                             "offset"))
    assert fine == [] and err < 1e-4


def test_an_in_place_kernel_that_writes_elsewhere_is_caught():
    good = _torch_rms_norm()

    def elsewhere(x, weight, eps):  # noqa: ANN001 - result in a fresh tensor, argument unchanged
        y = x.clone()
        good.kernel(y, weight, eps)
        return y

    bad = SimpleNamespace(provider="bad", inplace=True, outputs=(0,), kernel=elsewhere)
    placed = kernel_suite.place(sample_args("rms_norm", 2, 256, torch.float32), OPS["rms_norm"].activations,
                                "contiguous")
    problems, _ = kernel_suite.check_call("rms_norm", bad, placed)
    assert any("max_abs_err" in p for p in problems)  # the argument still holds the input


def test_every_in_place_kernel_is_also_measured_out_of_place():
    for name, op in OPS.items():
        forms = kernel_suite.kernel_forms(op)
        for impl in kernel_suite.triton_impls(op):
            if impl.inplace and impl.out_of_place is not None:
                assert ("inplace", impl) in forms and ("out", impl) in forms, name


def test_an_out_of_place_form_leaving_elements_unwritten_is_caught():
    """Outputs start as NaN: a form that skips the last row fails; the real one passes."""
    good = _torch_rms_norm()

    def skips_last_row(x, weight, eps, x_out):  # noqa: ANN001
        good.out_of_place(x[:-1], weight, eps, x_out[:-1])

    lazy = SimpleNamespace(**{**{f: getattr(good, f) for f in ("writes", "outputs", "supports")},
                              "out_of_place": skips_last_row})
    placed = kernel_suite.place(sample_args("rms_norm", 3, 256, torch.float32), OPS["rms_norm"].activations,
                                "strided")
    problems, _ = kernel_suite.check_call("rms_norm", kernel_suite.OutOfPlaceCall.fresh(lazy, placed.args), placed)
    assert any("max_abs_err" in p for p in problems)
    fine, err = kernel_suite.check_call("rms_norm", kernel_suite.OutOfPlaceCall.fresh(good, placed.args), placed)
    assert fine == [] and err < 1e-4


@pytest.mark.slow
def test_cpu_kernel_suite_checks_every_triton_kernel_untimed(tmp_path):
    run = api.run(suite="kernels", device="cpu", out=tmp_path / "k")
    df = run.results
    triton_ops = {n for n, op in OPS.items() if kernel_suite.triton_impls(op)}
    assert {w.removeprefix("kernel_") for w in df["workload"]} == triton_ops
    assert {v.rsplit("_", 1)[1] for v in df["variant"]} == set(kernel_suite.LAYOUTS)
    in_place_ops = {n for n, op in OPS.items() if any(i.inplace for i in kernel_suite.triton_impls(op))}
    for name in in_place_ops:  # both forms of every in-place kernel
        forms = {v.split("_")[1] for v in df.loc[df["workload"] == f"kernel_{name}", "variant"]}
        assert forms == {"inplace", "out"}, name
    assert (df["status"] == results.Status.OK.value).all(), df.loc[~df["ok"], "error"].tolist()
    assert (df["timer"] == kernel_suite.NOT_TIMED).all()
    assert df["latency_us_p50"].isna().all() and df["pct_of_peak"].isna().all()
    assert (df["model_bytes"] > 0).all()
    assert all(math.isfinite(e) for e in df["max_abs_err"])
    assert (tmp_path / "k" / "env.json").exists()
    # rows the gate can guard: an A/A gate of the run against a baseline made from it passes,
    # and a kernel that starts failing is a regression
    base = write_baseline(load_run(run.run_dir), tmp_path / "kernels.parquet")
    frozen = load_run(run.run_dir)
    assert gate(load_baseline(base), frozen, GateConfig()).exit_code == 0
    frozen.rows.loc[0, ["ok", "status", "error"]] = (False, "fail", "output 0 max_abs_err 1")
    assert gate(load_baseline(base), frozen, GateConfig()).regressions
