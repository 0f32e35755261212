"""How the pass scales with model depth: a transformers Llama of N layers (small hidden size)
compiled through the pipeline; compile time, pass time and clone counts per policy, and the
pass alone on the compiled model's graph, both policies side by side.

The pass is meant to cost a small fraction of a compile (target: under 5% at 32 layers).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import fx

import cleanpass

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


@dataclass(frozen=True)
class PassTimes:
    """Median seconds of each policy on copies of one model's post-grad graph."""

    layers: int
    nodes: int
    clones: int
    rounds: int
    seconds: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.seconds["sound"] / self.seconds["vllm"]


def measure_pass(layers: int = 32, rounds: int = 21, tokens: int = 16, family: str = "llama",
                 dims: ModelDims = SMALL) -> PassTimes:
    """The pass alone on the post-grad graph of an ``layers``-layer model as our lowering leaves
    it: both policies on fresh copies, alternating round by round (who goes first alternates
    too) so that a noisy machine slows both alike; each policy's own timer."""
    from workloads.models._hf import VOCAB, make_model

    model = make_model(family, dims, layers, torch.float32, "cpu")
    ids = torch.randint(0, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(0))
    compiled = pipeline.compile_fn(hf.adapt(model), policy=None)
    post = compiled.post
    captured: list[tuple[fx.Graph, tuple[int, ...]]] = []
    post.stages.append(("capture", lambda g: captured.append((pipeline.copy_graph(g), post.donated(g)))))
    with torch.inference_mode():
        compiled(ids)
    graph, donated = max(captured, key=lambda item: len(item[0].nodes))
    seconds: dict[str, list[float]] = {"sound": [], "vllm": []}
    for index in range(rounds + 1):  # round 0 warms per-op caches
        for policy in ("sound", "vllm") if index % 2 else ("vllm", "sound"):
            report = cleanpass.eliminate_clones_in_graph(pipeline.copy_graph(graph), donated, policy=policy)
            if index:
                seconds[policy].append(report.seconds)
    clones = sum(1 for n in graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.clone.default)
    return PassTimes(layers, len(graph.nodes), clones, rounds,
                     {policy: statistics.median(found) for policy, found in seconds.items()})
