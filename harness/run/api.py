"""``harness.run.api.run``: the whole run as one function (the CLI and tests call this)."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

import pandas as pd

from harness.run import env as envmod
from harness.store import results
from harness.run import kernel_suite
from harness.run import vllm_backend
from harness.run import runner
from harness.run import suites
from harness.run import variants as variantmod
from harness.store import shard as shardmod

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    results: pd.DataFrame
    samples: pd.DataFrame
    env: dict
    seconds: float


def load_workloads(modules: Sequence[str] = ()) -> dict[str, Any]:
    """The workload catalog, with the workloads installed packages register and those the
    modules ``modules`` define (imported lazily: the harness imports without it)."""
    from workloads import catalog

    return dict(catalog.all_workloads(modules))


#: CPU runs time single-threaded. Inductor's C++ kernels open an OpenMP parallel region on
#: every call; on a shared machine the barrier waits for a descheduled thread, and a 20 us
#: kernel measures as 20 ms (seen on the 2-core CI VM under load). One thread is what a CPU
#: run can time honestly; pass ``cpu_threads=None`` (``--cpu-threads 0``) for torch's default.
CPU_THREADS = 1


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (set before any compile, so
    Inductor generates its kernels for it), restored after."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(suite: str = "smoke", device: str = "auto", workloads: Sequence[str] | None = None,
        dtypes: Sequence[str] | None = None, tokens: Sequence[int] | None = None,
        variants: Sequence[str] | None = None, shard_spec: str | None = None, shard: str | None = None,
        out: str | Path | None = None, results_root: str | Path = "results/local",
        progress: runner.Progress | None = None, catalog: dict[str, Any] | None = None,
        plan: suites.TimingPlan | None = None, attribution: bool = False,
        cpu_threads: int | None = CPU_THREADS, skip: Sequence[str] | None = None) -> RunResult:
    """Run a suite end to end and write its run directory; returns what was written.

    ``cpu_threads``: torch's intra-op threads for a CPU run (None: leave torch's setting).
    ``skip``: workloads left out (after ``workloads`` picked).
    """
    if suite not in suites.PLANS and suite not in (kernel_suite.SUITE, vllm_backend.SUITE):
        raise ValueError(f"unknown suite {suite!r}")
    dev = envmod.resolve_device(device)
    with _intra_op_threads(cpu_threads if dev == "cpu" else None):
        return _run(suite, dev, workloads, dtypes, tokens, variants, shard_spec or shard, out,
                    results_root, progress, catalog, plan, attribution, skip)


def _run(suite: str, dev: str, workloads: Sequence[str] | None, dtypes: Sequence[str] | None,
         tokens: Sequence[int] | None, variants: Sequence[str] | None, shard_spec: str | None,
         out: str | Path | None, results_root: str | Path, progress: runner.Progress | None,
         catalog: dict[str, Any] | None, plan: suites.TimingPlan | None, attribution: bool,
         skip: Sequence[str] | None) -> RunResult:
    t0 = time.perf_counter()
    if suite == kernel_suite.SUITE:
        return _run_kernels(dev, dtypes, tokens, out, results_root, t0)
    if suite == vllm_backend.SUITE:
        return _run_vllm_backend(dev, workloads, dtypes, out, results_root, t0)
    catalog = catalog if catalog is not None else load_workloads()
    cases = suites.case_matrix(catalog, suite, only=workloads,
                               dtypes=[suites.parse_dtype(d) for d in dtypes] if dtypes else None,
                               tokens=tokens, skip=skip)
    shard_kn = None
    if shard_spec:
        k, n = shardmod.parse_shard(shard_spec)
        cases = shardmod.shard_cases(cases, k, n)
        shard_kn = f"{k}/{n}"
    if not cases:
        raise ValueError("no cases to run (check --workloads/--skip-workloads/--dtypes/--shard)")
    commit, _ = envmod.git_commit()
    run_dir = results.claim_out_dir(out) if out else results.new_run_dir(results_root, commit)
    log.info("%d cases -> %s", len(cases), run_dir)
    peak = runner.measure_peak_gbps(dev)
    env = envmod.collect_env(dev, suite, peak)
    env["shard"] = shard_kn
    env["variants"] = [info.to_json() for info in variantmod.declarations(variants)]
    opts = runner.RunOptions(suite=suite, device=dev, device_name=env["device_name"], variants=variants,
                             plan=plan, attribution=attribution)
    tables = results.RunTables()
    try:
        runner.run_cases(cases, catalog, opts, progress, tables)
    except KeyboardInterrupt:  # keep what finished: a partial run is still a record
        log.warning("interrupted after %d rows; writing them", len(tables.rows))
        env["interrupted"] = True
        if not tables.rows:
            raise
    df = results.stamp_run_id(results.rows_to_frame(tables.rows, peak), Path(run_dir).name)
    samples = results.samples_frame(tables.samples)
    extra = {"samples_launch.parquet": results.samples_frame(tables.launch_samples)} if tables.launch_samples else {}
    if attribution:
        extra[results.ATTRIBUTION_FILE] = results.attribution_frame(tables.attribution)
    env["seconds"] = round(time.perf_counter() - t0, 1)
    results.write_run(run_dir, df, samples, env, extra=extra)
    return RunResult(run_dir, df, samples, env, time.perf_counter() - t0)


def _run_kernels(dev: str, dtypes: Sequence[str] | None, tokens: Sequence[int] | None,
                 out: str | Path | None, results_root: str | Path, t0: float) -> RunResult:
    """``--suite kernels``: each Triton kernel alone (timed on CUDA, checked everywhere)."""
    commit, _ = envmod.git_commit()
    run_dir = results.claim_out_dir(out) if out else results.new_run_dir(results_root, commit)
    peak = runner.measure_peak_gbps(dev)
    env = envmod.collect_env(dev, kernel_suite.SUITE, peak)
    names = [suites.dtype_name(suites.parse_dtype(d)) for d in dtypes] if dtypes else None
    rows, samples = kernel_suite.run_rows(dev, tokens, names, env["device_name"])
    df = results.rows_to_frame(rows, peak)
    samples_df = results.samples_frame(samples)
    env["seconds"] = round(time.perf_counter() - t0, 1)
    results.write_run(run_dir, df, samples_df, env)
    return RunResult(run_dir, df, samples_df, env, time.perf_counter() - t0)


def _run_vllm_backend(dev: str, models: Sequence[str] | None, dtypes: Sequence[str] | None,
                      out: str | Path | None, results_root: str | Path, t0: float) -> RunResult:
    """``--suite vllm``: models of vLLM's IR ops compiled by vLLM's own ``VllmBackend``, one row
    per clone-slot arm (skipped rows with the reason where vLLM is not installed)."""
    commit, _ = envmod.git_commit()
    run_dir = results.claim_out_dir(out) if out else results.new_run_dir(results_root, commit)
    peak = runner.measure_peak_gbps(dev)
    env = envmod.collect_env(dev, vllm_backend.SUITE, peak)
    env["variants"] = [info.to_json() for info in variantmod.declarations(
        ["eager", *vllm_backend.ARM_VARIANTS.values()])]
    picked = tuple(suites.parse_dtype(d) for d in dtypes) if dtypes else vllm_backend.DTYPES
    rows = vllm_backend.run_rows(models, picked, progress=lambda what: log.info("vllm-backend: %s", what),
                                 device=dev)
    for row in rows:
        row.device_name = env["device_name"]
    df = results.stamp_run_id(results.rows_to_frame(rows, peak), Path(run_dir).name)
    samples = results.samples_frame([])
    env["seconds"] = round(time.perf_counter() - t0, 1)
    results.write_run(run_dir, df, samples, env)
    return RunResult(run_dir, df, samples, env, time.perf_counter() - t0)
