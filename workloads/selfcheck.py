"""Compile a workload through the pipeline and compare it with eager: shared by the tests
(CPU, CUDA, and the Triton-interpreter subprocess), the clone table and the harness."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from workloads import catalog, donation, numerics, pipeline

log = logging.getLogger(__name__)

@dataclass
class Run:
    """One compiled workload run: clone counts, outputs, and what went wrong."""

    workload: str
    variant: str
    shape: catalog.Shape
    clones: tuple[int, int]
    outputs: tuple[torch.Tensor, ...]
    compiled: Any = None
    built: Any = None
    problems: list[str] = field(default_factory=list)


def as_tuple(x: Any) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def compile_run(wl: catalog.Workload, shape: catalog.Shape, variant: str = "lowered",
                dtype: torch.dtype = torch.float32, device: Any = "cpu",
                providers: Sequence[str] | None = None) -> Run:
    """Build, compile (dynamic token dim) and run once; check against the float64 reference."""
    built = wl.build(shape, dtype, device)
    donation.check_declared(wl.name, built.fn, built.fresh_inputs(), built.donated)
    compiled = pipeline.compile_fn(built.fn, policy=pipeline.arm(variant).policy, providers=providers)
    inputs = built.fresh_inputs()
    built.mark_token_dims(inputs, shape.hidden)
    out = as_tuple(compiled(*inputs))
    reps = compiled.reports
    clones = (reps[-1].clones_before, reps[-1].clones_after) if reps else (-1, -1)
    run = Run(wl.name, variant, shape, clones, out, compiled, built)
    ref = as_tuple(built.reference(*built.fresh_inputs()))
    for i, (o, r) in enumerate(zip(out, ref)):
        if not numerics.allclose(o.cpu(), r.cpu(), dtype, wl.tolerance_scale):
            run.problems.append(f"{wl.name}/{variant} output {i}: max_abs_err "
                                f"{numerics.max_abs_err(o.cpu(), r.cpu()):.3g}")
    for pos, (a, b) in enumerate(zip(built.inputs, inputs)):
        if pos not in built.donated and isinstance(a, torch.Tensor) and not torch.equal(a, b):
            run.problems.append(f"{wl.name}/{variant}: non-donated input {pos} was written")
    return run


def check_workloads(names: Sequence[str], suite: str = "test", device: Any = "cpu",
                    dtype: torch.dtype = torch.float32, providers: Sequence[str] | None = None,
                    variants: Sequence[str] = ("lowered",)) -> list[str]:
    """Problems (empty = fine) for each workload's first shape in ``suite``; counts checked too."""
    problems: list[str] = []
    for name in names:
        wl = catalog.get(name)
        shape = wl.shapes(suite)[0]
        for v in variants:
            run = compile_run(wl, shape, v, dtype, device, providers)
            want = wl.expected_clones_for(shape).get(v)
            if want is not None and run.clones != want:
                problems.append(f"{name}/{v}: clones {run.clones}, expected {want}")
            if v not in wl.expected_wrong:
                problems += run.problems
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """CLI for the Triton-interpreter subprocess: exit 1 and list problems if any."""
    import argparse
    import json
    import sys

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workloads", default="fused_add_rms_norm")
    p.add_argument("--providers", default="triton")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default="lowered")
    p.add_argument("--dtype", default="float32")
    a = p.parse_args(argv)
    names = sorted(catalog.all_workloads()) if a.workloads == "all" else a.workloads.split(",")
    providers = None if a.providers == "auto" else a.providers.split(",")
    problems = check_workloads(names, device=a.device, dtype=getattr(torch, a.dtype), providers=providers,
                               variants=a.variants.split(","))
    for pr in problems:
        sys.stdout.write(json.dumps(pr) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
