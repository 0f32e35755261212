"""How the pass scales with model depth: a transformers Llama of N layers (small hidden size)
compiled through the pipeline; compile time, pass time and clone counts per policy.

The pass is meant to cost a small fraction of a compile (target: under 5% at 32 layers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from workloads import hf, pipeline
from workloads.dims import ModelDims

SMALL = ModelDims("scale-small", 256, 4, 2, 64, 512, 1e-5)


@dataclass(frozen=True)
class ScalePoint:
    layers: int
    policy: str
    tokens: int
    compile_s: float          # first call: trace, lowering, pass, Inductor codegen
    pass_s: float             # cleanpass alone (its own timer)
    clones_before: int
    clones_after: int

    @property
    def pass_share(self) -> float:
        return self.pass_s / self.compile_s


def measure(layers: int = 32, policies: Sequence[str] = ("sound", "vllm"), tokens: int = 16,
            family: str = "llama", dims: ModelDims = SMALL) -> list[ScalePoint]:
    """One compile per policy of an adapted ``layers``-layer model, from token ids."""
    from workloads.models._hf import VOCAB, make_model

    model = make_model(family, dims, layers, torch.float32, "cpu")
    ids = torch.randint(0, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(0))
    points = []
    for policy in policies:
        compiled = pipeline.compile_fn(hf.adapt(model), policy=policy)
        started = time.perf_counter()
        with torch.inference_mode():
            compiled(ids)
        total = time.perf_counter() - started
        report = compiled.reports[-1]
        points.append(ScalePoint(layers, policy, tokens, total, report.seconds,
                                 report.clones_before, report.clones_after))
    return points
