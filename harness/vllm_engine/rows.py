"""Engine arms as harness rows (pipeline `vllm-engine`), samples and variant declarations.

One row per (model, dtype, arm): `workload` is `engine_<model>`, `variant` the arm, `num_tokens`
the tokens generated per run, `clones_before`/`clones_after` the clones of all compiled pieces
after lowering and at the end of the post-grad passes (none for eager), `compile_s` the engine
start (load, compile, KV cache), and the latency columns the generation time per generated token
(quantiles over repetitions; one sample per repetition in `samples.parquet`). `bitwise_equal`
compares tokens and log-probs with the `no_pass` arm; the cleanpass arms promise it.
"""
from __future__ import annotations

import statistics
from typing import Sequence

from harness.store.results import Row, VariantInfo, Verdict
from harness.vllm_engine import models as modelmod
from harness.vllm_engine.arms import ARMS, MAX_TOKENS, PROMPTS, REFERENCE_ARM
from harness.vllm_engine.checks import judge
from harness.vllm_engine.outcome import NOT_REPRODUCIBLE, ArmOutcome, repetitions_agree

PIPELINE = "vllm-engine"
SUITE = "vllm-engine"
TIMER = "wall clock, generate()"
GENERATED = len(PROMPTS) * MAX_TOKENS
HIDDEN = 128


def workload_name(model: str) -> str:
    return f"engine_{model}"


def declarations(arms: Sequence[str]) -> list[VariantInfo]:
    """What each arm is, for `env.json: variants` (the judge and the report read it)."""
    known = {
        "no_pass": VariantInfo("no_pass", baseline=True),
        "vllm_pass": VariantInfo("vllm_pass", policy="vllm-real", partner=REFERENCE_ARM, reference=True),
        "cleanpass": VariantInfo("cleanpass", policy="sound", partner=REFERENCE_ARM),
        "cleanpass_spawned": VariantInfo("cleanpass_spawned", policy="sound", partner=REFERENCE_ARM),
        "eager": VariantInfo("eager"),
    }
    return [known[a] for a in arms]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _base(model: str, dtype: str, arm: str, device_name: str) -> Row:
    # a zoo model is named by its architecture
    arch = modelmod.MODELS[model].architecture if model in modelmod.MODELS else model
    partner = REFERENCE_ARM if arm in ("vllm_pass", "cleanpass", "cleanpass_spawned") else ""
    return Row(workload=workload_name(model), variant=arm, dtype=dtype, num_tokens=GENERATED, hidden=HIDDEN,
               model=f"{arch} (tiny, 2 layers)", device="cpu", device_name=device_name,
               suite=SUITE, pipeline=PIPELINE, bitwise_partner=partner, timer=TIMER)


def skipped_rows(models: Sequence[str], dtypes: Sequence[str], arms: Sequence[str], reason: str,
                 device_name: str) -> list[Row]:
    """Every row of the check, skipped with `reason` (no vLLM environment here)."""
    return [_base(m, d, a, device_name).skip(reason) for m in models for d in dtypes for a in arms]


def arm_row(reps: list[ArmOutcome], by_arm: dict[str, ArmOutcome], device_name: str) -> Row:
    """The row of one arm from its repetitions (the first is compared; all must agree)."""
    first = reps[0]
    row = _base(first.model, first.dtype, first.arm, device_name)
    verdict = judge(first, by_arm)
    for problem in verdict.problems:
        row.fail(problem)
    if not repetitions_agree(reps):
        row.fail(NOT_REPRODUCIBLE)
    ran = [r for r in reps if r.ok]
    row.reps = len(ran)
    row.block_count = len(ran)
    if not ran:
        return row
    row.clones_before, row.clones_after = first.clones_lowered, first.clones_final
    per_token = [r.generate_s / r.generated * 1e6 for r in ran if r.generated]
    if per_token:
        row.latency_us_p20, row.latency_us_p50, row.latency_us_p80 = (
            _quantile(per_token, q) for q in (0.2, 0.5, 0.8))
    row.compile_s = statistics.median(r.start_s for r in ran)
    row.bitwise_equal = verdict.bitwise
    if verdict.bitwise:
        row.numerics = Verdict.IDENTICAL
    elif verdict.tokens_vs_reference:
        row.numerics = Verdict.WITHIN_TOLERANCE
    elif row.bitwise_partner or (first.dtype == "float32" and ARMS[first.arm].eager):
        row.numerics = Verdict.FAIL
    return row


def samples(reps: list[ArmOutcome], row: Row) -> list[dict]:
    """One block sample per repetition: generation microseconds per generated token."""
    return [{"workload": row.workload, "variant": row.variant, "dtype": row.dtype,
             "num_tokens": row.num_tokens, "hidden": row.hidden, "device": row.device,
             "device_name": row.device_name, "block": i, "sample_us": r.generate_s / r.generated * 1e6}
            for i, r in enumerate(reps) if r.ok and r.generated]
