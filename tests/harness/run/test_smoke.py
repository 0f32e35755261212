"""The real smoke suite end to end on the CPU: rows, columns, types, ok values, files."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.run import api
from harness.store import results
from harness.run import suites
from harness.run import variants
from harness.report import summary

pytestmark = pytest.mark.slow

#: Variants registered as the reference pass (vLLM's, real or modelled): their holes are findings.
REFERENCE = {i.name for i in variants.declarations() if i.reference}

ENV_KEYS = {"device", "device_name", "peak_gbps_measured", "torch", "triton", "python", "commit", "dirty",
            "utc", "suite", "driver", "cuda", "clocks", "hostname", "cpu_count", "vllm"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    # the smoke suite's cases and variants; fewer timing blocks to keep the test quick
    return api.run(suite="smoke", device="cpu", out=out, plan=suites.PLANS["test"])


@pytest.fixture(scope="module")
def catalog():
    return api.load_workloads()


def test_one_row_per_case_and_variant(run, catalog):
    cases = suites.case_matrix(catalog, "smoke")
    df = run.results
    assert len(df) == len(cases) * len(variants.variant_names())
    assert not df.duplicated(list(results.ROW_KEY)).any()
    assert set(df["variant"]) == {"eager", "native", "lowered", "vllm", "vllm_real", "cleanpass",
                                  "cleanpass_nofold", "ideal"}
    assert set(df["workload"]) == {name for name, wl in catalog.items() if wl.shapes("smoke")}


def test_real_vllm_pass_runs_or_is_a_skipped_row_with_the_reason(run):
    """Availability is data: without vllm the variant is a skipped row saying why."""
    from harness.run import vllm_real

    rows = run.results[run.results["variant"] == "vllm_real"]
    assert len(rows)
    if vllm_real.version() is None:
        assert (rows["status"] == results.Status.SKIPPED.value).all()
        assert rows["error"].str.contains("vllm is not installed").all()
        assert run.env["vllm"] is None
    else:
        assert (rows["status"] != results.Status.SKIPPED.value).all()
        assert run.env["vllm"] == vllm_real.version()


def test_columns_and_types(run):
    df = run.results
    assert list(df.columns) == results.COLUMNS
    assert df["dtype"].isin(["float32", "float16", "bfloat16"]).all()
    assert df["ok"].dtype == bool and str(df["bitwise_equal"].dtype) == "boolean"
    assert (df["device"] == "cpu").all() and (df["suite"] == "smoke").all()
    for c in ("clones_before", "clones_after", "kernels", "copies", "bytes_accessed", "model_bytes"):
        assert str(df[c].dtype) == "Int64", c


def test_rows_record_which_bit_equality_they_promise(run):
    """The gate fails only promised bit-equality (rule 3); the runner records the promise."""
    df = run.results
    ran = df[df["status"] != results.Status.SKIPPED.value]
    promised = ran.set_index("variant")["bitwise_partner"]
    passes = ["cleanpass", "cleanpass_nofold", *sorted(REFERENCE & set(promised.index))]
    assert "vllm" in passes and set(promised.loc[passes]) == {"lowered"}
    assert set(promised.drop(passes)) == {""}


def test_every_variant_but_the_reference_pass_is_ok(run):
    """vLLM's pass (real or modelled) has known holes: its failures are findings; nothing else fails."""
    df = run.results
    reference = df["variant"].isin(REFERENCE)
    bad = df[~df["ok"] & ~reference]
    assert bad.empty, bad[["workload", "num_tokens", "variant", "error"]].to_string()
    vllm_bad = df[~df["ok"] & reference]
    # its holes: wrong values, or a kept input overwritten (hf_llama_layer_views)
    assert vllm_bad["error"].str.contains("reference|bit-identical|non-donated inputs written").all()


def test_failures_are_read_against_the_workloads_predictions(run, catalog):
    """Workload.expected_wrong reaches every row; the vllm view hole is wrong as predicted."""
    df = run.results
    for name, wl in catalog.items():
        rows = df[df["workload"] == name]
        assert (rows["expected_wrong"] == rows["variant"].isin(wl.expected_wrong)).all(), name
    outcomes = {(r.workload, r.variant): results.outcome(r.status, r.ok, r.expected_wrong)
                for r in df.itertuples()}
    assert outcomes[("rotary_views_base_read", "vllm")] is results.Outcome.EXPECTED_WRONG
    assert results.Outcome.UNEXPECTED not in outcomes.values()


def test_the_run_stores_each_variants_declaration(run):
    infos = {i.name: i for i in results.variant_infos(run.env)}
    assert list(infos) == variants.variant_names()
    assert results.baseline_variant(list(infos.values())) == "lowered"
    assert (infos["vllm"].policy, infos["vllm"].partner, infos["vllm"].reference) == ("vllm", "lowered", True)
    assert (infos["cleanpass"].policy, infos["cleanpass"].reference) == ("sound", False)
    assert infos["ideal"].bound and infos["eager"].policy is None


def test_clone_counts_match_the_workloads_contract(run, catalog):
    df = run.results
    for case in suites.case_matrix(catalog, "smoke"):
        w = catalog[case.workload]
        expected = w.expected_clones_for(case.shape) if hasattr(w, "expected_clones_for") else w.expected_clones
        for variant, (before, after) in expected.items():
            row = df[(df["workload"] == case.workload) & (df["num_tokens"] == case.shape.num_tokens)
                     & (df["hidden"] == case.shape.hidden) & (df["variant"] == variant)]
            assert len(row) == 1
            got = (int(row["clones_before"].iloc[0]), int(row["clones_after"].iloc[0]))
            assert got == (before, after), (case.key, variant)


#: Workloads whose cleanpass code has no copy at all: every clone of our lowering is removed or
#: folded into an out-of-place kernel (read from the generated code, not the FX graph).
COPY_FREE = ("fused_add_rms_norm", "rms_norm", "norm_chain", "donated_chain", "rotary_views",
             "rotary_views_base_read")


def test_copies_are_read_from_every_compiled_variants_code(run):
    """The copy count and the view check ran on every compiled graph of the suite."""
    df = run.results
    ran = df[df["status"] != results.Status.SKIPPED.value]
    eager = ran["variant"].isin(["eager", "ideal"])
    assert ran.loc[eager, "copies"].isna().all()  # no generated code: empty, not 0
    assert ran.loc[~eager, "copies"].notna().all()
    assert not df["error"].str.contains("view check").any(), df.loc[df["error"] != "", "error"].tolist()


def test_cleanpass_leaves_only_the_real_copies(run):
    """No copy of our lowering survives in cleanpass's code; llama_block keeps the GQA expand
    (one kernel holding both kv expansions), which the native compile has too."""
    df = run.results.set_index(["workload", "num_tokens", "variant"])["copies"]
    cp = df.xs("cleanpass", level="variant")
    for workload in COPY_FREE:
        assert (cp.loc[workload] == 0).all(), workload
    native = df.xs("native", level="variant")
    assert (cp.loc["llama_block"] == native.loc["llama_block"]).all()
    assert (cp.loc["llama_block"] == 1).all()
    assert (cp <= df.xs("lowered", level="variant")).all()


#: Clones elimination keeps and cleanpass folds, per smoke workload (README: clones per workload).
FOLDED = {"donated_chain": 0, "fused_add_rms_norm": 2, "llama_block": 2, "norm_chain": 2, "rms_norm": 1,
          "rotary_views": 1, "rotary_views_base_read": 2}


def test_folding_off_shows_what_elimination_and_folding_each_contribute(run):
    """``cleanpass_nofold`` is elimination alone: it keeps the clones cleanpass folds, as copies,
    bit-identical to lowered; on the non-donated norms (the seed's 1.00x on the H100) elimination
    alone saves nothing and folding all of cleanpass's half; the summary says so."""
    df = run.results.set_index(["workload", "num_tokens", "hidden", "dtype", "variant"]).sort_index()
    cp, off, low = (df.xs(v, level="variant") for v in ("cleanpass", "cleanpass_nofold", "lowered"))
    assert off["ok"].all() and off["bitwise_equal"].all()
    assert set(off.index.get_level_values("workload")) == set(FOLDED)
    for workload, folded in FOLDED.items():
        c, o, lo = cp.loc[workload], off.loc[workload], low.loc[workload]
        assert (o["clones_after"] == c["clones_after"] + folded).all(), workload
        assert (o["bytes_exact"] <= lo["bytes_exact"]).all() and (o["copies"] <= lo["copies"]).all()
        if folded:
            assert (o["copies"] > c["copies"]).all() and (o["bytes_exact"] > c["bytes_exact"]).all(), workload
        else:
            assert (o["copies"] == c["copies"]).all() and (o["bytes_exact"] == c["bytes_exact"]).all()
    for workload in ("fused_add_rms_norm", "rms_norm"):
        assert (off.loc[workload, "bytes_exact"] == low.loc[workload, "bytes_exact"]).all()
        assert (2 * cp.loc[workload, "bytes_exact"] < low.loc[workload, "bytes_exact"] * 1.01).all()
    table = summary.summarize(run.results, results.variant_infos(run.env)).set_index("workload")
    assert table.loc["fused_add_rms_norm", "without_folding"] == "0%"
    assert table.loc["fused_add_rms_norm", "bytes_saved"] == "50%"
    assert table.loc["donated_chain", "without_folding"] == table.loc["donated_chain", "bytes_saved"]


def test_cleanpass_is_bit_identical_to_lowered_and_never_costs_more(run):
    df = run.results.set_index(["workload", "num_tokens", "hidden", "dtype", "variant"])
    cp = df.xs("cleanpass", level="variant")
    low = df.xs("lowered", level="variant")
    assert cp["bitwise_equal"].all()
    assert (cp["numerics"] == "bitwise_identical").all()
    assert (cp["kernels"] <= low["kernels"]).all()
    assert (cp["bytes_accessed"] <= low["bytes_accessed"]).all()


def test_the_pass_compiles_where_lowered_does(run):
    """Each variant compiles once per group at its largest token count (dynamic) and serves the
    others from it unless the model's own code guards a size (rotary_views' matmul does, for
    every variant alike). The pass adds no guard: each pass row is counted at the token count
    its lowered row is, and no byte note says otherwise."""
    df = run.results
    case = ["workload", "dtype", "num_tokens", "hidden", "model"]
    lowered = df[df["variant"] == "lowered"].set_index(case)["bytes_at_tokens"]
    for variant in ("cleanpass", "vllm"):
        rows = df[df["variant"] == variant].set_index(case)["bytes_at_tokens"]
        assert rows.to_dict() == lowered.loc[rows.index].to_dict(), variant
    assert not df["bytes_note"].str.contains("different token counts").any()


def test_latencies_and_bandwidth_are_filled(run):
    df = run.results
    timed = df[df["status"] != "skipped"]
    assert (timed["latency_us_p20"] > 0).all()
    assert (timed["latency_us_p20"] <= timed["latency_us_p50"]).all()
    assert (timed["latency_us_p50"] <= timed["latency_us_p80"]).all()
    assert (timed["block_count"] == suites.PLANS["test"].blocks).all()
    assert (timed["gbps"] > 0).all() and (timed["pct_of_peak"] > 0).all()


def test_files_are_present_and_read_back(run):
    d = run.run_dir
    for name in results.RESULT_FILES:
        assert (d / name).is_file(), name
    back, samples, env = results.read_run(d)
    pd.testing.assert_frame_equal(back, run.results)
    assert len(pd.read_csv(d / "results.csv")) == len(back)
    assert ENV_KEYS | {"variants"} <= set(env) and env["device"] == "cpu" and env["peak_gbps_measured"] > 0
    assert list(samples.columns) == results.SAMPLE_COLUMNS
    per_block = samples.groupby(["workload", "variant", "dtype", "num_tokens", "hidden", "block"]).size()
    assert (per_block == 1).all()
    timed = back[back["status"] != "skipped"]
    assert len(samples) == int(timed["block_count"].sum())
    bench = json.loads((d / "benchmark.json").read_text())
    assert len(bench["benchmarks"]) == len(timed) and {"machine_info", "commit_info"} <= set(bench)


def test_cpu_runs_are_timed_single_threaded_and_leave_torch_as_they_found_it(run):
    """OpenMP barriers on a shared CPU turn microsecond kernels into milliseconds (docs/timing.md)."""
    import torch

    assert run.env["torch_num_threads"] == api.CPU_THREADS == 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with api._intra_op_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
