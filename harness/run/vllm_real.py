"""vLLM's own `UnsafeCloneEliminationPass`, run on our graphs: the one module that imports vllm.

Used by the `vllm_real` variant and by `make peer` (scripts/peer_compare.py). vLLM reads
donation from its pass context (`donated_input_ids`: positions in `graph.nodes`); we map our
donated placeholder positions onto it. Importing vllm is slow (seconds) and needs its
pure-Python dependencies, so availability is probed once and reported as a reason, never raised.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

CLONE = torch.ops.aten.clone.default


def version() -> str | None:
    """The installed vLLM's version, without importing it (None when not installed)."""
    try:
        return importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(1)
def _load() -> tuple[Any, str | None]:
    """(vLLM's module pieces, None) or (None, why not)."""
    if version() is None:
        return None, "vllm is not installed (make peer builds an environment with it)"
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu" if not torch.cuda.is_available() else "cuda")
    try:
        from vllm.compilation.passes.inductor_pass import get_pass_context, pass_context
        from vllm.compilation.passes.ir.clone_elimination import UnsafeCloneEliminationPass
        from vllm.config import VllmConfig
        from vllm.config.utils import Range
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        return None, f"vllm {version()} not importable ({type(error).__name__}: {error})"
    return (get_pass_context, pass_context, UnsafeCloneEliminationPass, VllmConfig, Range), None


def unavailable() -> str | None:
    """Why the real pass cannot run here, or None when it can."""
    return _load()[1]


@dataclass
class RealPassReport:
    """Clone counts of one run (vLLM's pass reports no per-clone decisions)."""

    clones_before: int
    clones_after: int


def _count_clones(graph: fx.Graph) -> int:
    return len(graph.find_nodes(op="call_function", target=CLONE))


class RealCloneElimination:
    """vLLM's pass as `pass_(graph, donated) -> RealPassReport` (a workloads pipeline stage)."""

    def __init__(self) -> None:
        parts, reason = _load()
        if parts is None:
            raise RuntimeError(reason)
        self._get_context, self._context, pass_class, config_class, self._range = parts
        self._pass = pass_class(config_class())

    def __call__(self, graph: fx.Graph, donated: tuple[int, ...]) -> RealPassReport:
        before = _count_clones(graph)
        position = {node: index for index, node in enumerate(graph.nodes)}
        placeholders = graph.find_nodes(op="placeholder")
        ids = {position[placeholders[i]] for i in donated if 0 <= i < len(placeholders)}
        with self._context(compile_range=self._range(1, 8192)):
            self._get_context().donated_input_ids = ids
            self._pass(graph)
        return RealPassReport(before, _count_clones(graph))

    def uuid(self) -> str:
        return f"vllm-{version()}-UnsafeCloneEliminationPass"
