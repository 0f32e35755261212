"""Numerics checks per row: float64 reference, bit-exact A/B, untouched inputs.

- Against the reference (the workload's plain-torch ``native_fn`` run on float64 copies of the
  inputs): every output element must satisfy ``|out - ref| <= atol + rtol * |ref|`` with the
  dtype's tolerance (``workloads.numerics``, widened by the workload's ``tolerance_scale``);
  NaN in an output never passes.
- Bit-exact: a clone-elimination variant must produce the very bits of ``lowered`` (removing a
  copy changes no arithmetic); its registration names the partner (``VariantInfo.partner``).
- Inputs the variant does not donate must hold the same bits after the call.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from harness.run.compat import tree_leaves
from harness.store.results import Verdict
from workloads import numerics


def flat_tensors(out: Any) -> list[torch.Tensor]:
    """Tensor leaves of an output pytree (non-tensors are ignored)."""
    return [x for x in tree_leaves(out) if isinstance(x, torch.Tensor)]


def to_reference_inputs(inputs: Sequence[Any]) -> tuple:
    """Float64 copies of floating inputs (others passed as they are) for the reference run."""
    return tuple(x.detach().to(torch.float64).clone() if isinstance(x, torch.Tensor) and x.is_floating_point()
                 else x for x in inputs)


@dataclass(frozen=True)
class Comparison:
    """Result of comparing outputs to the reference."""

    verdict: Verdict
    max_abs_err: float
    detail: str = ""


def compare_to_reference(out: Sequence[torch.Tensor], ref: Sequence[torch.Tensor],
                         dtype: torch.dtype, scale: float = 1.0) -> Comparison:
    """Dtype-aware closeness of each output to the float64 reference; NaN never passes."""
    if len(out) != len(ref):
        return Comparison(Verdict.FAIL, math.nan, f"{len(out)} outputs, reference has {len(ref)}")
    tol = numerics.tolerance(dtype, scale)
    worst = 0.0
    problems = []
    for i, (o, r) in enumerate(zip(out, ref)):
        if tuple(o.shape) != tuple(r.shape):
            return Comparison(Verdict.FAIL, math.nan, f"output {i}: shape {tuple(o.shape)} != {tuple(r.shape)}")
        if o.numel() == 0:
            continue
        o64, r64 = o.detach().to(torch.float64), r.detach().to(torch.float64)
        nan = torch.isnan(o64)
        if bool(nan.any()):
            problems.append(f"output {i}: {int(nan.sum())} NaN")
            worst = math.nan
            continue
        diff = (o64 - r64).abs()
        both_inf = torch.isinf(o64) & torch.isinf(r64) & (o64 == r64)
        diff = torch.where(both_inf, torch.zeros_like(diff), diff)
        err = float(torch.nan_to_num(diff, nan=math.inf).max())
        worst = err if worst != worst else max(worst, err)
        bad = ~(diff <= tol.atol + tol.rtol * r64.abs())
        if bool(bad.any()):
            idx = tuple(int(v) for v in torch.nonzero(bad)[0])
            problems.append(f"output {i}: {int(bad.sum())}/{bad.numel()} elements beyond atol={tol.atol} "
                            f"rtol={tol.rtol}, max abs err {err:.3g}, first at {idx}")
    if problems:
        return Comparison(Verdict.FAIL, worst, "; ".join(problems))
    return Comparison(Verdict.WITHIN_TOLERANCE, worst)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.uint8) if t.numel() else t.detach().reshape(-1)


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (NaN payloads and signed zeros included)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def bitwise_diff(out: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> str:
    """Empty when all outputs are bit-identical; else where they differ and by how much."""
    if len(out) != len(other):
        return f"{len(out)} outputs vs {len(other)}"
    msgs = []
    for i, (a, b) in enumerate(zip(out, other)):
        if a.dtype != b.dtype or a.shape != b.shape:
            msgs.append(f"output {i}: {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}")
            continue
        if bit_equal(a, b):
            continue
        a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
        differ = ~((a64 == b64) | (torch.isnan(a64) & torch.isnan(b64)))
        if not bool(differ.any()):  # only signed zeros / NaN payloads differ
            msgs.append(f"output {i}: bit patterns differ (signed zero or NaN payload)")
            continue
        idx = tuple(int(v) for v in torch.nonzero(differ)[0])
        d = float(torch.nan_to_num((a64 - b64).abs(), nan=math.inf).max())
        msgs.append(f"output {i}: {int(differ.sum())}/{differ.numel()} elements differ, "
                    f"max abs diff {d:.3g}, first at {idx}")
    return "; ".join(msgs)


def changed_inputs(before: Sequence[Any], after: Sequence[Any], donated: Sequence[int]) -> list[int]:
    """Positions of non-donated tensor inputs whose bits changed during the call."""
    allowed = set(donated)
    return [i for i, (b, a) in enumerate(zip(before, after))
            if i not in allowed and isinstance(b, torch.Tensor) and not bit_equal(b, a)]


def verdict_for(ref_cmp: Comparison, bitwise_ok: bool | None) -> Verdict:
    """Row verdict: FAIL if either check fails; IDENTICAL when it matched its partner bit for bit."""
    if ref_cmp.verdict is Verdict.FAIL or bitwise_ok is False:
        return Verdict.FAIL
    return Verdict.IDENTICAL if bitwise_ok else Verdict.WITHIN_TOLERANCE
