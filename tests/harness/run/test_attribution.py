"""Kernel attribution: classification rules on synthetic profiles (CPU and CUDA shaped) and a
real small CPU run whose copy kernels disappear when the pass removes the clones."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import pandas as pd
import pytest

from harness.run import api, attribution, suites
from harness.run.attribution import KernelEvent
from harness.store import results


def test_names_classify_into_the_five_classes():
    assert attribution.name_class("aten::copy_") == "copy"
    assert attribution.name_class("cleanpass_kernels::rms_norm_torch_") == "ir"
    assert attribution.name_class("_rms_norm_rows") == "ir"
    assert attribution.name_class("aten::mm") == "matmul"
    assert attribution.name_class("sm90_xmma_gemm_bf16bf16_bf16f32") == "matmul"
    assert attribution.name_class("aten::_scaled_dot_product_flash_attention") == "attention"
    assert attribution.name_class("triton_red_fused_add_mean_pow_rsqrt_0") == "other"
    # "mm" only as a word: a kernel whose name merely contains the letters is not a matmul
    assert attribution.name_class("summary_kernel") == "other"


def test_generated_kernel_keys_drop_graph_prefix_and_handle():
    assert attribution.generated_key("graph_3_cpp_fused_add_clone_0") == "cpp_fused_add_clone_0"
    assert attribution.generated_key("triton_poi_fused_clone_1:7") == "triton_poi_fused_clone_1"
    assert attribution.generated_key("aten::mm") is None


# A synthetic CUDA profile: device kernels of two calls, with Inductor's provenance map.
PROVENANCE = {
    # a clone fused into a norm-like pointwise kernel: half its time is the copy
    "triton_poi_fused_mul_0": ["clone_1", "mul", "view_2"],
    "triton_poi_fused_clone_1": ["clone", "permute"],
}
CUDA_EVENTS = [
    KernelEvent("triton_poi_fused_mul_0", 10.0),
    KernelEvent("triton_poi_fused_clone_1", 4.0),
    KernelEvent("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", 30.0),
    KernelEvent("_rms_norm_rows", 6.0),
    KernelEvent("flash_fwd_kernel", 8.0),
] * 2


def test_fused_clone_is_charged_to_copies_through_provenance():
    by = attribution.attribute(CUDA_EVENTS, PROVENANCE, calls=2)
    assert by["copy"] == pytest.approx((5.0 + 4.0, 1.5))
    assert by["other"] == pytest.approx((5.0, 0.5))
    assert by["matmul"] == pytest.approx((30.0, 1.0))
    assert by["ir"] == pytest.approx((6.0, 1.0))
    assert by["attention"] == pytest.approx((8.0, 1.0))
    # the split conserves time and launches
    assert sum(us for us, _ in by.values()) == pytest.approx(58.0)
    assert sum(k for _, k in by.values()) == pytest.approx(5.0)


def test_without_provenance_the_kernel_name_decides():
    by = attribution.attribute(CUDA_EVENTS, None, calls=2)
    assert by["copy"] == pytest.approx((4.0, 1.0))      # the fused clone is invisible by name
    assert by["other"] == pytest.approx((10.0, 1.0))
    shares = attribution.kernel_shares("cpp_fused_add_clone_0")
    assert shares == {"other": 0.5, "copy": 0.5}


@dataclass
class FakeEvent:
    """The parts of a torch.profiler FunctionEvent the collectors read."""

    name: str
    cpu_time_total: float = 0.0
    device_time_total: float = 0.0
    device_type: object = field(default_factory=lambda: SimpleNamespace(name="CPU"))
    cpu_parent: "FakeEvent | None" = None
    cpu_children: list = field(default_factory=list)


def _tree(parent: FakeEvent, *children: FakeEvent) -> FakeEvent:
    for c in children:
        c.cpu_parent = parent
        parent.cpu_children.append(c)
    return parent


def test_cpu_events_are_the_outermost_work_below_wrappers():
    inner = FakeEvent("aten::empty_strided", 1.0)
    mm = _tree(FakeEvent("aten::mm", 20.0), inner)
    kernel = FakeEvent("graph_0_cpp_fused_clone_0", 5.0)
    call = _tree(FakeEvent("## Call CompiledFxGraph abc ##", 30.0), kernel, mm)
    region = _tree(FakeEvent("Torch-Compiled Region: 0/0", 31.0), call)
    found = attribution.cpu_kernel_events([region, call, kernel, mm, inner])
    assert found == [KernelEvent("graph_0_cpp_fused_clone_0", 5.0), KernelEvent("aten::mm", 20.0)]


def test_cuda_events_are_the_device_kernels_with_device_time():
    cuda = SimpleNamespace(name="CUDA")
    events = [FakeEvent("aten::mm", 50.0),
              FakeEvent("sm90_xmma_gemm", device_time_total=12.0, device_type=cuda),
              FakeEvent("triton_poi_fused_clone_0", device_time_total=3.0, device_type=cuda)]
    assert attribution.device_kernel_events(events) == [KernelEvent("sm90_xmma_gemm", 12.0),
                                                        KernelEvent("triton_poi_fused_clone_0", 3.0)]


def test_peak_memory_is_not_measured_on_cpu():
    assert attribution.peak_call_bytes(lambda: None, None, "cpu") is None


def _row(variant: str, latency: float, bytes_exact: int, tokens: int = 64) -> results.Row:
    r = results.Row(workload="w", variant=variant, dtype="float32", num_tokens=tokens, hidden=8)
    r.latency_us_p50, r.bytes_exact = latency, bytes_exact
    return r


def test_saving_realized_compares_time_saved_with_the_removed_bytes_at_peak():
    # 1e6 bytes removed at 100 GB/s cost 10 us; the pass saved 5 us: half realized
    df = results.rows_to_frame([_row("lowered", 100.0, 3_000_000), _row("cleanpass", 95.0, 2_000_000),
                                _row("native", 50.0, 1_000_000), _row("vllm", 100.0, 3_000_000)], 100.0)
    got = dict(zip(df["variant"], df["saving_realized"]))
    assert got["cleanpass"] == pytest.approx(0.5)
    assert math.isnan(got["native"]) and math.isnan(got["lowered"])
    assert math.isnan(got["vllm"])  # nothing removed: no ratio
    assert math.isnan(results.rows_to_frame([_row("lowered", 100.0, 3), _row("cleanpass", 95.0, 2)],
                                            None)["saving_realized"][1])


def test_new_columns_have_schema_dtypes():
    df = results.rows_to_frame([_row("lowered", 1.0, 1)], 1.0)
    assert str(df["peak_mem_bytes"].dtype) == "Int64"
    assert df["copy_us"].dtype == float and list(df.columns) == results.COLUMNS


@pytest.mark.slow
def test_real_cpu_run_attributes_copies_that_the_pass_removes(tmp_path):
    """donated_chain: lowered keeps 6 clones (fused into copy kernels), cleanpass removes all.
    Kernel counts per class are deterministic; times are not, so only their sign is checked."""
    out = tmp_path / "run"
    run = api.run(suite="smoke", device="cpu", workloads=["donated_chain"], dtypes=["float32"],
                  tokens=[8], variants=["lowered", "cleanpass"], out=out, plan=suites.PLANS["test"],
                  attribution=True)
    table = results.read_attribution(out)
    assert table is not None and set(table["kernel_class"]) == set(results.KERNEL_CLASSES)
    per = table.set_index(["variant", "kernel_class"])
    assert per.loc[("lowered", "copy"), "kernels"] >= 1
    assert per.loc[("cleanpass", "copy"), "kernels"] < per.loc[("lowered", "copy"), "kernels"]
    assert per.loc[("lowered", "ir"), "kernels"] == per.loc[("cleanpass", "ir"), "kernels"] >= 1
    assert per.loc[("lowered", "matmul"), "kernels"] >= 1
    rows = run.results.set_index("variant")
    assert rows.loc["lowered", "copy_us"] > 0
    assert rows.loc["cleanpass", "copy_us"] < rows.loc["lowered", "copy_us"]
    assert pd.isna(rows.loc["lowered", "peak_mem_bytes"])


def test_runs_without_attribution_write_no_table_and_old_runs_read(tmp_path):
    assert results.read_attribution(tmp_path) is None


def test_device_time_is_the_kernels_own_time_range_when_present():
    cuda = SimpleNamespace(name="CUDA")
    ev = FakeEvent("triton_poi_fused_clone_0", device_time_total=0.0, device_type=cuda)
    ev.time_range = SimpleNamespace(elapsed_us=lambda: 9.0)
    assert attribution.device_kernel_events([ev]) == [KernelEvent("triton_poi_fused_clone_0", 9.0)]
