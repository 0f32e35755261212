"""Suites: which cases run (from the workload catalog) and how hard each is timed."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch

log = logging.getLogger(__name__)

SUITES = ("smoke", "default", "nightly")

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                  "bfloat16": torch.bfloat16, "float64": torch.float64}
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16",
            "float": "float32", "fp64": "float64", "double": "float64"}


@dataclass(frozen=True)
class TimingPlan:
    """How much timing a suite does: blocks, and repetitions sized to ``target_block_s``.

    ``case_budget_s`` caps one case's timing: when all variants' calls are slow (big matmuls on
    a CPU), the case gets fewer blocks, never fewer than ``min_blocks``.
    """

    blocks: int
    target_block_s: float
    min_reps: int
    max_reps: int
    launch_blocks: int  # CUDA launch-inclusive (no graph) blocks
    case_budget_s: float = 30.0
    min_blocks: int = 3

    def blocks_for(self, block_s: float) -> int:
        """Blocks for a case whose one block (all variants) takes ``block_s`` seconds."""
        if not block_s > 0:
            return self.blocks
        fit = int(self.case_budget_s // block_s)
        return max(min(self.blocks, self.min_blocks), min(self.blocks, fit))


PLANS: dict[str, TimingPlan] = {
    "smoke": TimingPlan(blocks=3, target_block_s=0.004, min_reps=1, max_reps=50, launch_blocks=2,
                        case_budget_s=5.0),
    "default": TimingPlan(blocks=7, target_block_s=0.015, min_reps=1, max_reps=200, launch_blocks=3,
                          case_budget_s=12.0),
    # nightly runs on a GPU: each repetition also flushes L2 (~0.1 ms untimed), so cap the reps
    "nightly": TimingPlan(blocks=15, target_block_s=0.005, min_reps=5, max_reps=50, launch_blocks=5,
                          case_budget_s=3.0, min_blocks=8),
    "test": TimingPlan(blocks=2, target_block_s=0.001, min_reps=1, max_reps=5, launch_blocks=1,
                       case_budget_s=1.0, min_blocks=2),
}


@dataclass(frozen=True)
class Case:
    """One (workload, shape, dtype): every variant runs on it."""

    workload: str
    shape: Any          # workloads.catalog.Shape
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @property
    def group_key(self) -> str:
        """The case without its token count: one compile per group and variant."""
        return f"{self.workload}|{self.dtype_name}|{getattr(self.shape, 'model', '')}|{self.shape.hidden}"

    @property
    def key(self) -> str:
        return f"{self.group_key}|{self.shape.num_tokens}"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(name: str) -> torch.dtype:
    n = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if n not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of {sorted(DTYPES)}")
    return DTYPES[n]


def case_matrix(workloads: dict[str, Any], suite: str, only: Sequence[str] | None = None,
                dtypes: Sequence[torch.dtype] | None = None,
                tokens: Sequence[int] | None = None,
                skip: Sequence[str] | None = None) -> list[Case]:
    """All cases of ``suite``, filtered; ordered so each group's largest token count comes first.

    ``tokens`` replaces the suite's token counts (for each distinct model/hidden of the suite);
    ``skip`` leaves workloads out (a lease runs the ones it must measure first, then the rest).
    """
    for names in (only, skip):
        unknown = sorted(set(names or ()) - set(workloads))
        if unknown:
            raise KeyError(f"unknown workloads {unknown}; known: {sorted(workloads)}")
    cases: list[Case] = []
    for name in sorted(workloads):
        if (only and name not in only) or (skip and name in skip):
            continue
        wl = workloads[name]
        shapes = list(wl.shapes(suite))
        if tokens:
            seen, base = set(), []
            for s in shapes:
                k = (getattr(s, "model", ""), s.hidden)
                if k not in seen:
                    seen.add(k)
                    base.append(s)
            shapes = [dataclasses.replace(s, num_tokens=int(t)) for s in base for t in tokens]
        wl_dtypes = list(wl.dtypes(suite))
        if dtypes:  # any dtype the workload supports in some suite, in the order asked
            known = {d for su in (*SUITES, "test") for d in _safe_dtypes(wl, su)}
            wl_dtypes = [d for d in dtypes if d in known]
        for dt in wl_dtypes:
            for s in shapes:
                cases.append(Case(name, s, dt))
    # stable: groups in first-seen order, largest token count first inside a group
    order = {c.group_key: i for i, c in reversed(list(enumerate(cases)))}
    return sorted(cases, key=lambda c: (order[c.group_key], -c.shape.num_tokens))


def _safe_dtypes(wl: Any, suite: str) -> list[torch.dtype]:
    try:
        return list(wl.dtypes(suite))
    except Exception:  # noqa: BLE001 - a suite the workload does not know
        return []


def group_cases(cases: Sequence[Case]) -> list[list[Case]]:
    """Consecutive cases of one compile group."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.group_key, []).append(c)
    return list(groups.values())
