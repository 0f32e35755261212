"""Run a suite: for every case build the workload, prepare each variant, validate, time.

Nothing here raises for a bad workload or variant: an exception in build, compile, run or
timing becomes failed rows (``ok=False``, reason in ``error``) and the run goes on.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from harness.run import attribution
from harness.run import timing
from harness.run import validate
from harness.run import compat
from harness.run.compat import attribution_config, measurement_config
from harness.run.compile import CompileCache
from harness.store.results import Row, RunTables, Status, baseline_variant
from harness.run.suites import PLANS, Case, TimingPlan, group_cases
from harness.run.variants import Context, Prepared, VariantSpec, registered

log = logging.getLogger(__name__)

Progress = Callable[[int, int, Case, list[Row]], None]


@dataclass
class RunOptions:
    suite: str
    device: str                       # resolved: "cpu" or "cuda"
    device_name: str = ""
    variants: Sequence[str] | None = None   # None = all registered
    plan: TimingPlan | None = None
    attribution: bool = False         # profile each variant: kernel time per class


@dataclass
class _Live:
    """One variant's state inside a case."""

    row: Row
    prep: Prepared | None = None
    outputs: list[torch.Tensor] = field(default_factory=list)
    mutated: tuple[int, ...] = ()
    ran: bool = False               # the variant produced outputs (then it is timed)


def _short(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip().replace("\n", " ")
    return msg[:400]


def run_cases(cases: Sequence[Case], workloads: dict[str, Any], opts: RunOptions,
              progress: Progress | None = None, tables: RunTables | None = None) -> RunTables:
    """Run every case (grouped so compiles are reused) and collect rows and samples.

    Rows land in ``tables`` case by case, so a caller that catches an interrupt keeps the
    finished cases.
    """
    tables = tables if tables is not None else RunTables()
    cache = CompileCache()
    plan = opts.plan or PLANS[opts.suite]
    done = 0
    with measurement_config():
        for group in group_cases(cases):
            for case in group:
                rows, samples, launch, attrib = run_case(case, workloads[case.workload], opts, plan, cache)
                tables.rows += rows
                tables.samples += samples
                tables.launch_samples += launch
                tables.attribution += attrib
                done += 1
                if progress is not None:
                    progress(done, len(cases), case, rows)
            _release(cache, group[0].group_key, opts.device)
    return tables


def _release(cache: CompileCache, group_key: str, device: str) -> None:
    for key in [k for k in cache.entries if k[1] == group_key]:
        del cache.entries[key]
    for key in [k for k in cache.provenance if k[1] == group_key]:
        del cache.provenance[key]
    # the group's graphs are done with: drop Dynamo's cache entries too, so guard checks and
    # memory stay flat over a long run
    compat.reset_dynamo()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _new_row(case: Case, variant: str, opts: RunOptions, expected_wrong: Sequence[str]) -> Row:
    s = case.shape
    return Row(workload=case.workload, variant=variant, dtype=case.dtype_name,
               num_tokens=int(s.num_tokens), hidden=int(s.hidden), model=str(getattr(s, "model", "") or ""),
               device=opts.device, device_name=opts.device_name, suite=opts.suite,
               expected_wrong=variant in expected_wrong)


def _restore_fn(prep: Prepared, pristine: tuple, positions: Sequence[int]) -> Callable[[], None] | None:
    """Copy pristine values back into the inputs a call may have written (outside timing)."""
    pairs = [(prep.inputs[i], pristine[i]) for i in sorted(set(positions))
             if isinstance(prep.inputs[i], torch.Tensor)]
    if not pairs:
        return None

    def restore() -> None:
        for dst, src in pairs:
            dst.copy_(src)
    return restore


def run_case(case: Case, workload: Any, opts: RunOptions, plan: TimingPlan,
             cache: CompileCache) -> tuple[list[Row], list[dict], list[dict], list[dict]]:
    """All variants of one case: rows, graph/CPU samples, launch-inclusive samples and
    attribution records (empty unless ``opts.attribution``)."""
    specs = registered()
    names = list(opts.variants) if opts.variants is not None else list(specs)
    expected_wrong = tuple(getattr(workload, "expected_wrong", ()))
    live = {n: _Live(_new_row(case, n, opts, expected_wrong)) for n in names}
    for n in names:
        if n not in specs:
            live[n].row.fail(f"unknown variant {n!r}")

    # 1. build the case, its pristine inputs and the float64 reference (a workload missing an
    # optional package is skipped rows, with its reason)
    unavailable = workload.unavailable() if hasattr(workload, "unavailable") else None
    if unavailable:
        return [lv.row.skip(unavailable) if lv.row.ok else lv.row for lv in live.values()], [], [], []
    try:
        built = workload.build(case.shape, case.dtype, opts.device)
        pristine = tuple(x.detach().clone() if isinstance(x, torch.Tensor) else x for x in built.inputs)
    except Exception as e:  # noqa: BLE001
        log.error("build %s failed: %s", case.key, _short(e))
        return [lv.row.fail(f"build: {_short(e)}") for lv in live.values()], [], [], []
    try:
        model_bytes = int(workload.model_bytes(case.shape, case.dtype))
    except Exception as e:  # noqa: BLE001
        log.warning("model_bytes %s failed: %s", case.key, _short(e))
        model_bytes = None
    ref_error = None
    try:
        reference = validate.flat_tensors(built.native_fn(*validate.to_reference_inputs(pristine)))
    except Exception as e:  # noqa: BLE001
        reference, ref_error = None, f"reference: {_short(e)}"
    for lv in live.values():
        lv.row.model_bytes = model_bytes
    ctx = Context(workload=case.workload, built=built, pristine=pristine, num_tokens=int(case.shape.num_tokens),
                  hidden=int(case.shape.hidden), group_key=case.group_key, device=opts.device, cache=cache)

    # 2. prepare (compile) and validate each variant
    for n in names:
        lv = live[n]
        if not lv.row.ok:
            continue
        spec = specs[n]
        try:
            reason = spec.enabled(ctx)
        except Exception as e:  # noqa: BLE001
            reason = f"availability check raised {_short(e)}"
        if reason:
            lv.row.skip(reason)
            continue
        try:
            with _provenance(cache, (n, case.group_key), opts.attribution):
                lv.prep = spec.builder(ctx)
        except Exception as e:  # noqa: BLE001
            log.error("prepare %s/%s failed: %s", case.key, n, _short(e))
            log.debug("%s", traceback.format_exc())
            lv.row.fail(f"compile: {_short(e)}")
            continue
        _fill_counts(lv.row, lv.prep)
        _validate_one(lv, pristine, reference, ref_error, case.dtype, ctx,
                      float(getattr(workload, "tolerance_scale", 1.0)))

    _bitwise(live, specs)

    # 3. time every variant that runs (a numerically wrong one is still timed: it ran)
    runnable = {n: lv for n, lv in live.items() if lv.ran}
    samples, launch = _time_case(case, runnable, pristine, plan, opts)
    _peak_memory(case, runnable, pristine, opts)
    attrib = _attribute_case(case, runnable, pristine, opts, cache) if opts.attribution else []
    for lv in live.values():
        lv.outputs = []
        lv.prep = None
    return [live[n].row for n in names], samples, launch, attrib


def _provenance(cache: CompileCache, key: tuple, enabled: bool) -> contextlib.AbstractContextManager:
    """Compile under attribution settings, collecting provenance per (variant, group)."""
    if not enabled:
        return contextlib.nullcontext()
    return attribution_config(cache.provenance.setdefault(key, {}))


def _peak_memory(case: Case, runnable: dict[str, _Live], pristine: tuple, opts: RunOptions) -> None:
    """``peak_mem_bytes`` of one call per variant (CUDA only; CPU leaves it empty)."""
    if opts.device != "cuda":
        return
    for n, lv in runnable.items():
        try:
            lv.row.peak_mem_bytes = attribution.peak_call_bytes(
                lv.prep.call, _restore_fn(lv.prep, pristine, lv.mutated), opts.device)
        except Exception as e:  # noqa: BLE001
            log.warning("peak memory %s/%s failed: %s", case.key, n, _short(e))


def _attribute_case(case: Case, runnable: dict[str, _Live], pristine: tuple, opts: RunOptions,
                    cache: CompileCache) -> list[dict]:
    """Profile each variant that ran: kernel time per class and ``copy_us``."""
    records: list[dict] = []
    s = case.shape
    for n, lv in runnable.items():
        if lv.prep is None:
            continue
        restore = _restore_fn(lv.prep, pristine, lv.mutated)
        try:
            events = attribution.profile_calls(lv.prep.call, restore, opts.device, calls=2)
            by_class = attribution.attribute(events, cache.provenance.get((n, case.group_key)), calls=2)
        except Exception as e:  # noqa: BLE001
            log.warning("attribution %s/%s failed: %s", case.key, n, _short(e))
            continue
        lv.row.copy_us = by_class["copy"][0]
        key = dict(workload=case.workload, variant=n, dtype=case.dtype_name, num_tokens=int(s.num_tokens),
                   hidden=int(s.hidden), model=str(getattr(s, "model", "") or ""), device=opts.device)
        records += attribution.attribution_records(key, by_class)
    return records


def _fill_counts(row: Row, prep: Prepared) -> None:
    for column, value in prep.counts.row_columns().items():
        setattr(row, column, value)
    row.compile_s = float(prep.compile_s)
    if prep.counts.view_errors:  # a kernel writes a temporary instead of the view's base: loud
        row.fail("view check: " + "; ".join(prep.counts.view_errors))
    if prep.counts.shape_guards:  # the program recompiles (or, where guards are dropped, is wrong) elsewhere
        row.fail("the pass specialised the graph on shape guards: " + ", ".join(prep.counts.shape_guards))


def _validate_one(lv: _Live, pristine: tuple, reference: list[torch.Tensor] | None, ref_error: str | None,
                  dtype: torch.dtype, ctx: Context, tolerance_scale: float = 1.0) -> None:
    """Fresh call on pristine inputs, every fresh allocation of the variant's code poisoned
    (``Prepared.poisoned``): outputs vs reference, non-donated inputs untouched."""
    prep, row = lv.prep, lv.row
    assert prep is not None
    try:
        restore_all = _restore_fn(prep, pristine, range(len(prep.inputs)))
        if restore_all is not None:
            restore_all()
        with prep.poisoned():
            out = validate.flat_tensors(prep.call())
            ctx.sync()
        lv.outputs = [o.detach().clone() for o in out]
    except Exception as e:  # noqa: BLE001
        row.fail(f"run: {_short(e)}")
        return
    lv.ran = True
    changed = validate.changed_inputs(pristine, prep.inputs, prep.donated)
    all_changed = validate.changed_inputs(pristine, prep.inputs, ())
    lv.mutated = tuple(sorted(set(prep.donated) | set(all_changed)))
    if changed:
        row.fail(f"non-donated inputs written: positions {changed}")
    if reference is None:
        row.fail(ref_error or "no reference")
        row.numerics = validate.Verdict.FAIL
        return
    cmp = validate.compare_to_reference(lv.outputs, reference, dtype, tolerance_scale)
    row.max_abs_err = cmp.max_abs_err
    row.numerics = cmp.verdict
    if cmp.verdict is validate.Verdict.FAIL:
        row.fail(f"numerics vs float64 reference: {cmp.detail}")


def _bitwise(live: dict[str, _Live], specs: dict[str, VariantSpec]) -> None:
    """Each variant's bits vs the baseline variant; declared partners that differ fail."""
    base_name = baseline_variant([s.info for s in specs.values()])
    base = live.get(base_name) if base_name is not None else None
    have_base = base is not None and base.outputs and base.row.status is not Status.SKIPPED
    for n, lv in live.items():
        if not lv.outputs:
            continue
        if have_base:
            diff = validate.bitwise_diff(lv.outputs, base.outputs)
            lv.row.bitwise_equal = diff == ""
        partner = specs[n].info.partner if n in specs else None
        bitwise_ok = None
        if partner is not None and partner in live and live[partner].outputs:
            lv.row.bitwise_partner = partner
            diff = validate.bitwise_diff(lv.outputs, live[partner].outputs)
            bitwise_ok = diff == ""
            if not bitwise_ok:
                lv.row.fail(f"not bit-identical to {partner}: {diff}")
        if lv.row.numerics is not None and lv.row.numerics is not validate.Verdict.FAIL:
            lv.row.numerics = validate.verdict_for(
                validate.Comparison(validate.Verdict.WITHIN_TOLERANCE, lv.row.max_abs_err), bitwise_ok)
        elif bitwise_ok is False:
            lv.row.numerics = validate.Verdict.FAIL


def _sample_records(case: Case, opts: RunOptions, name: str, values: Sequence[float]) -> list[dict]:
    s = case.shape
    return [dict(workload=case.workload, variant=name, dtype=case.dtype_name, num_tokens=int(s.num_tokens),
                 hidden=int(s.hidden), device=opts.device, device_name=opts.device_name, block=b,
                 sample_us=float(v)) for b, v in enumerate(values)]


def _time_case(case: Case, runnable: dict[str, _Live], pristine: tuple, plan: TimingPlan,
               opts: RunOptions) -> tuple[list[dict], list[dict]]:
    if not runnable:
        return [], []
    if opts.device == "cuda":
        from harness.run import cuda_runner

        primary, launch, blocks = cuda_runner.time_variants(
            {n: (lv.prep, _restore_fn(lv.prep, pristine, lv.mutated)) for n, lv in runnable.items()}, plan)
        timer = "cuda_graph"
    else:
        primary, blocks = _time_cpu(runnable, pristine, plan)
        launch, timer = {}, "cpu_perf_counter"
    samples, launch_records = [], []
    for n, lv in runnable.items():
        got = primary.get(n)
        if got is None:
            continue
        vals, reps, used_timer = got
        q = timing.quantiles(vals)
        lv.row.latency_us_p20, lv.row.latency_us_p50, lv.row.latency_us_p80 = q.p20, q.p50, q.p80
        lv.row.block_count, lv.row.reps, lv.row.timer = len(vals), reps, used_timer or timer
        if len(vals) < blocks:
            lv.row.fail(f"timing stopped after {len(vals)} of {blocks} blocks")
        samples += _sample_records(case, opts, n, vals)
        if n in launch:
            lq = timing.quantiles(launch[n])
            lv.row.launch_us_p20, lv.row.launch_us_p50, lv.row.launch_us_p80 = lq.p20, lq.p50, lq.p80
            launch_records += _sample_records(case, opts, n, launch[n])
    return samples, launch_records


def _time_cpu(runnable: dict[str, _Live], pristine: tuple, plan: TimingPlan
              ) -> tuple[dict[str, tuple[list[float], int, str]], int]:
    """Interleaved perf_counter blocks; reps sized from one or two untimed-restore calls (the
    first call of a shape can include a Dynamo re-trace, so it cannot size them); returns the
    blocks run."""
    block_fns, reps_of, block_s = {}, {}, 0.0
    for n, lv in runnable.items():
        prep = lv.prep
        restore = _restore_fn(prep, pristine, lv.mutated)
        try:  # also the warm-up: the first call of a reused graph may have re-traced
            one = timing.time_once_s(prep.call, restore)
            if one < 0.1:
                one = min(one, timing.time_once_s(prep.call, restore))
        except Exception as e:  # noqa: BLE001
            lv.row.fail(f"timing: {_short(e)}")
            continue
        reps = timing.reps_for(one, plan.target_block_s, plan.min_reps, plan.max_reps)
        reps_of[n] = reps
        block_s += reps * one
        block_fns[n] = (lambda c=prep.call, r=restore, k=reps: timing.cpu_block(c, r, k))
    blocks = plan.blocks_for(block_s)
    got = timing.interleave(block_fns, blocks)
    return {n: (v, reps_of[n], "cpu_perf_counter") for n, v in got.items()}, blocks


def measure_peak_gbps(device: str) -> float | None:
    """The run's bandwidth ceiling: a large device (or host) copy, measured now."""
    try:
        if device == "cuda":
            from harness.run.cuda_timing import measure_copy_gbps

            return measure_copy_gbps(torch.device("cuda", torch.cuda.current_device()))
        return timing.measure_cpu_copy_gbps()
    except Exception as e:  # noqa: BLE001
        log.warning("copy bandwidth measurement failed: %s", _short(e))
        return None

