"""Rows from vLLM's own compile pipeline: models of vLLM's IR ops compiled by `VllmBackend`.

`harness run --suite vllm` (the `vllm-backend` pipeline): each model of
`workloads.vllm_ir.models` is compiled once per arm of vLLM's clone slot, at the first token
count with the token dim dynamic, then run at both token counts. Variant names follow the rows
of our own pipeline: `lowered` (the slot does nothing), `vllm_real` (vLLM's
`UnsafeCloneEliminationPass`), `cleanpass`, `cleanpass_nofold`; `eager` is the model run eagerly
with vLLM's native implementations, the numerics reference.

Per row: clones the slot saw and left (summed over the pieces), copies and kernels read from
Inductor's generated code, exact bytes, the view check of our provider's kernels (a mutated
argument must reach its kernel as a buffer or a reinterpretation, never a temporary copy),
bit-exactness (`bitwise_equal` against `lowered`; `numerics` against eager native: identical
where every op is ours or native, else within the dtype's tolerance), non-donated inputs
untouched, and latency (interleaved wall-clock blocks, the device synchronised in each call,
donated inputs restored outside the timed region). On CPU the provider is our torch-written
one; on CUDA, vLLM's own `vllm_c` where vLLM's kernels are installed. Without vLLM every row is
skipped with the reason.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from harness.run import codecheck, compat, exact_bytes, measure, timing, validate, vllm_real
from harness.run.compile import capture_code
from harness.store.results import Row, Verdict

log = logging.getLogger(__name__)

SUITE = "vllm"
PIPELINE = "vllm-backend"
#: vLLM clone-slot arm -> the variant name its rows carry
ARM_VARIANTS = {"none": "lowered", "vllm": "vllm_real", "cleanpass": "cleanpass",
                "cleanpass_nofold": "cleanpass_nofold"}
TOKENS = (64, 7)     # compiled at the first, checked at both with that one compile
HIDDEN = 256
DTYPES = (torch.float32, torch.bfloat16)
BLOCKS, REPS = 7, 20


@dataclass
class _Live:
    """A runnable row: `call` inside `context()` (entered once per timed block)."""

    row: Row
    call: Callable[[], Any]
    restore: Callable[[], None] | None
    context: Callable[[], contextlib.AbstractContextManager]

    def block(self) -> float:
        with self.context():
            return timing.cpu_block(self.call, self.restore, REPS)


def unavailable() -> str | None:
    """Why vLLM's pipeline cannot run here (None: it can)."""
    return vllm_real.unavailable()


def _provider_mutated_args(qualname: str) -> tuple[tuple[int, str], ...] | None:
    """(position, name) of each argument one of our vLLM provider's kernels mutates."""
    ns, _, rest = qualname.partition("::")
    if ns != "cleanpass_vllm":
        return None
    op, _, overload = rest.partition(".")
    try:
        schema = getattr(getattr(torch.ops.cleanpass_vllm, op), overload or "default")._schema
    except (AttributeError, RuntimeError):
        return None
    return tuple((i, a.name) for i, a in enumerate(schema.arguments)
                 if a.alias_info is not None and a.alias_info.is_write)


def _synced(call: Callable[[], Any], device: str) -> Callable[[], Any]:
    """`call`, waiting for the device to finish (wall-clock blocks time the work, not the launch)."""
    if device != "cuda":
        return call

    def synced() -> Any:
        out = call()
        torch.cuda.synchronize()
        return out
    return synced


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _outputs(value: Any) -> list[torch.Tensor]:
    return validate.flat_tensors(value if isinstance(value, (tuple, list)) else (value,))


def _clone_all(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(t.clone() for t in inputs)


def _check_numerics(row: Row, outs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor],
                    dtype: torch.dtype, exact: bool) -> None:
    bitwise = len(outs) == len(refs) and all(validate.bit_equal(o, r) for o, r in zip(outs, refs))
    compared = validate.compare_to_reference(outs, refs, dtype)
    row.max_abs_err = compared.max_abs_err if row.max_abs_err != row.max_abs_err else \
        max(row.max_abs_err, compared.max_abs_err)
    if bitwise and row.numerics != Verdict.WITHIN_TOLERANCE:
        row.numerics = Verdict.IDENTICAL
    elif compared.verdict == Verdict.WITHIN_TOLERANCE and not exact:
        row.numerics = Verdict.WITHIN_TOLERANCE
    else:
        row.numerics = Verdict.FAIL
        row.fail(f"differs from eager native ({compared.detail or 'not bit-identical'})")


def _arm_row(spec: Any, arm: str, dtype: torch.dtype, hidden: int, tokens: Sequence[int],
             inputs: dict[int, tuple], references: dict[int, list[torch.Tensor]],
             outputs: dict[str, dict[int, list[torch.Tensor]]], model: Any,
             provider: str) -> tuple[Row, _Live | None]:
    from workloads.vllm_ir import backend

    variant = ARM_VARIANTS[arm]
    device = inputs[tokens[0]][0].device.type
    row = Row(workload=spec.name, variant=variant, dtype=str(dtype).removeprefix("torch."),
              num_tokens=tokens[0], hidden=hidden, model="vllm-ir", suite=SUITE, pipeline=PIPELINE,
              device=device, expected_wrong=arm in spec.expected_wrong,
              bitwise_partner="" if arm == "none" else ARM_VARIANTS["none"])
    try:
        first = _clone_all(inputs[tokens[0]])
        started = time.perf_counter()
        with capture_code() as generated, compat.count_inductor_bytes() as counted:
            compiled = backend.compile_model(model, first, arm, spec.splitting_ops,
                                             dynamic_dims=(0,) * len(first), provider=provider)
        row.compile_s = time.perf_counter() - started
    except Exception as error:  # a failed compile is this arm's row; the others go on
        log.warning("vllm-backend %s/%s: compile failed", spec.name, arm, exc_info=True)
        return row.fail(f"compile failed: {_first_line(error)}"), None
    row.clones_before, row.clones_after = compiled.clones_before, compiled.clones_after
    row.kernels = measure.count_kernels_in(generated.codes)
    row.copies = generated.copies()
    row.bytes_accessed = counted.value or None
    row.bytes_exact = exact_bytes.exact_bytes(counted.graphs)
    row.bytes_at_tokens = tokens[0]
    for code, provenance in zip(generated.codes, generated.provenance):
        for violation in codecheck.check_views(code, provenance, _provider_mutated_args).violations:
            row.fail(f"view check: {violation}")
    outputs[arm] = {}
    for count in tokens:
        given = _clone_all(inputs[count])
        try:
            outs = _outputs(compiled.call(*given))
        except Exception as error:
            return row.fail(f"run at {count} tokens failed: {_first_line(error)}"), None
        outputs[arm][count] = outs
        _check_numerics(row, outs, references[count], dtype, spec.exact)
        changed = validate.changed_inputs(inputs[count], given, spec.donated)
        if changed:
            row.fail(f"non-donated inputs {changed} changed at {count} tokens")
    if arm != "none" and "none" in outputs:
        row.bitwise_equal = all(validate.bit_equal(o, b) for count in tokens
                                for o, b in zip(outputs[arm][count], outputs["none"][count]))
        if not row.bitwise_equal:
            row.fail("not bit-identical to lowered")
    live_inputs = _clone_all(inputs[tokens[0]])
    pristine = inputs[tokens[0]]
    restore = (lambda: [t.copy_(p) for t, p in zip(live_inputs, pristine)]) if spec.donated else None
    return row, _Live(row, _synced(lambda: compiled.function(*live_inputs), device), restore,
                      compiled.context)


def _eager_row(spec: Any, dtype: torch.dtype, hidden: int, tokens: Sequence[int],
               inputs: dict[int, tuple], model: Any) -> tuple[Row, _Live]:
    from workloads.vllm_ir import backend

    device = inputs[tokens[0]][0].device.type
    row = Row(workload=spec.name, variant="eager", dtype=str(dtype).removeprefix("torch."),
              num_tokens=tokens[0], hidden=hidden, model="vllm-ir", suite=SUITE, pipeline=PIPELINE,
              device=device, numerics=Verdict.IDENTICAL, max_abs_err=0.0)
    live_inputs = _clone_all(inputs[tokens[0]])
    return row, _Live(row, _synced(lambda: model(*live_inputs), device), None, backend.native_context)


def _time(lives: dict[str, _Live]) -> None:
    """Interleaved CPU blocks over every runnable row of one model; medians into the rows."""
    blocks = {name: live.block for name, live in lives.items()}
    samples = timing.interleave(blocks, BLOCKS)
    for name, values in samples.items():
        if values:
            q = timing.quantiles(values)
            lives[name].row.latency_us_p20, lives[name].row.latency_us_p50, lives[name].row.latency_us_p80 = \
                q.p20, q.p50, q.p80
            lives[name].row.block_count, lives[name].row.reps = len(values), REPS
            lives[name].row.timer = "perf_counter"


def model_rows(spec: Any, dtype: torch.dtype, hidden: int = HIDDEN, tokens: Sequence[int] = TOKENS,
               arms: Sequence[str] = tuple(ARM_VARIANTS), timed: bool = True,
               device: str = "cpu") -> list[Row]:
    """Every arm of one model and dtype, plus its eager row, on `device` with the provider a
    user there gets first (`workloads.vllm_ir.backend.default_provider`)."""
    from workloads.vllm_ir import backend

    torch._dynamo.reset()  # a fresh Dynamo cache per model; its arms then live side by side
    with torch.no_grad():
        provider = backend.default_provider(device)
        model, _ = spec.build(tokens[0], hidden, dtype, device=device)
        inputs = {count: spec.build(count, hidden, dtype, seed=index, device=device)[1]
                  for index, count in enumerate(tokens)}
        references = {count: _outputs(backend.eager_native(model, _clone_all(inputs[count])))
                      for count in tokens}
        outputs: dict[str, dict[int, list[torch.Tensor]]] = {}
        eager, eager_live = _eager_row(spec, dtype, hidden, tokens, inputs, model)
        rows, lives = [eager], {"eager": eager_live}
        for arm in arms:
            row, live = _arm_row(spec, arm, dtype, hidden, tokens, inputs, references, outputs, model,
                                 provider)
            rows.append(row)
            if live is not None and row.ok:
                lives[arm] = live
        if timed:
            _time(lives)
    return rows


def run_rows(models: Sequence[str] | None = None, dtypes: Sequence[torch.dtype] = DTYPES,
             hidden: int = HIDDEN, tokens: Sequence[int] = TOKENS, timed: bool = True,
             progress: Callable[[str], None] | None = None, device: str = "cpu") -> list[Row]:
    """The `vllm` suite's rows: skipped with the reason where vLLM is not importable."""
    from workloads.vllm_ir.models import MODELS

    names = list(models) if models else list(MODELS)
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise KeyError(f"unknown vLLM IR models {unknown}; known: {sorted(MODELS)}")
    reason = unavailable()
    rows: list[Row] = []
    for name in names:
        for dtype in dtypes:
            if reason is not None:
                rows += [Row(workload=name, variant=v, dtype=str(dtype).removeprefix("torch."),
                             num_tokens=tokens[0], hidden=hidden, model="vllm-ir", suite=SUITE,
                             pipeline=PIPELINE, device=device).skip(reason)
                         for v in ("eager", *ARM_VARIANTS.values())]
                continue
            if progress is not None:
                progress(f"{name} {dtype}")
            rows += model_rows(MODELS[name], dtype, hidden, tokens, timed=timed, device=device)
    return rows


def side_by_side(rows: pd.DataFrame) -> list[str]:
    """Per model and dtype of a `vllm` run: clones lowered -> vLLM's pass -> cleanpass, copies in
    the generated code, and whether each pass's numerics held; the table `make vllm` prints."""
    lines = ["| model | dtype | clones after lowering | vLLM's pass leaves | cleanpass leaves (folded) "
             "| copies: lowered / vLLM / cleanpass | vLLM's pass | cleanpass |",
             "|---|---|---|---|---|---|---|---|"]
    measured = rows[rows["status"] != "skipped"]
    for (model, dtype), group in measured.groupby(["workload", "dtype"], sort=False):
        by = {r["variant"]: r for r in group.to_dict("records")}
        low, ref, ours, nofold = (by.get(v) for v in ("lowered", "vllm_real", "cleanpass", "cleanpass_nofold"))

        def count(row: dict | None, column: str) -> str:
            return "-" if row is None or pd.isna(row[column]) else str(int(row[column]))

        def verdict(row: dict | None) -> str:
            if row is None:
                return "-"
            if row["ok"]:
                return "ok"
            return "wrong (known hole)" if row["expected_wrong"] else f"FAIL: {str(row['error'])[:70]}"

        folded = "" if ours is None or nofold is None or pd.isna(nofold["clones_after"]) or \
            pd.isna(ours["clones_after"]) else f" ({int(nofold['clones_after']) - int(ours['clones_after'])})"
        copies = " / ".join(count(r, "copies") for r in (low, ref, ours))
        lines.append(f"| {model} | {dtype} | {count(low, 'clones_before')} | {count(ref, 'clones_after')} "
                     f"| {count(ours, 'clones_after')}{folded} | {copies} | {verdict(ref)} | {verdict(ours)} |")
    return lines
