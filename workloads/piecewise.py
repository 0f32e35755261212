"""Piecewise compilation, the way vLLM compiles a model: the Dynamo graph is split at every
attention call, each piece between two attentions is compiled on its own (attention runs as is),
so every piece's hidden and residual states arrive as placeholders. A piece donates those
inputs where the model code says so (``maybe_inplace`` on them); ``donated=False`` compiles the
same pieces with every ``maybe_inplace`` turned into the functional overload first, to show
what the declarations buy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import fx, nn
from torch.fx.passes.split_module import split_module

from workloads import compat, pipeline
from workloads.ir import ir_op_of, is_maybe_inplace

@dataclass
class PieceReport:
    """Clones of one compiled piece (``name`` is the split submodule, ``submod_<i>``).

    ``kept``: clones elimination could not remove (those left, plus those cleanpass folded into
    out-of-place kernels): what donating the piece's inputs changes."""

    name: str
    clones_before: int
    clones_after: int
    donated: tuple[int, ...]
    kept: int = 0


@dataclass
class Piecewise:
    """A split graph whose non-attention pieces were compiled through the pipeline.

    The graph takes Dynamo's flattened inputs (parameters and buffers included), in
    ``example_inputs``'s order.
    """

    module: fx.GraphModule
    example_inputs: list[Any]
    pieces: list[PieceReport] = field(default_factory=list)

    def __call__(self, *flat_inputs: Any) -> Any:
        return self.module(*(flat_inputs or self.example_inputs))

    @property
    def clones(self) -> tuple[int, int]:
        """(before, kept by elimination) summed over the pieces."""
        return (sum(p.clones_before for p in self.pieces), sum(p.kept for p in self.pieces))


def dynamo_graph(fn: Callable[..., Any], *args: Any) -> tuple[fx.GraphModule, list[Any]]:
    """The Torch IR graph Dynamo captures for ``fn(*args)`` (``maybe_inplace`` calls intact)
    and its flattened example inputs."""
    captured: list[tuple[fx.GraphModule, list[Any]]] = []

    def capture(gm: fx.GraphModule, example_inputs: Any) -> Callable[..., Any]:
        captured.append((gm, list(example_inputs)))
        return gm.forward

    with torch.inference_mode():
        torch.compile(compat.fresh_entry(fn), backend=capture, fullgraph=True, dynamic=False)(*args)
    return captured[-1]


def split_at_attention(gm: fx.GraphModule) -> fx.GraphModule:
    """Split ``gm`` into pieces: even ``submod_<2i>`` between attentions, odd ones an attention."""
    seen = 0
    partition: dict[fx.Node, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in compat.ATTENTION_TARGETS:
            seen += 1
            partition[node] = 2 * seen - 1
        elif node.op not in ("placeholder", "output"):
            partition[node] = 2 * seen
    return split_module(gm, None, lambda node: partition[node], keep_original_order=True)


def _functional_only(piece: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``piece`` whose ``maybe_inplace`` calls are the functional overloads."""
    piece = copy.deepcopy(piece)
    for node in piece.graph.nodes:
        if node.op == "call_function" and is_maybe_inplace(node.target):
            node.target = ir_op_of(node.target).functional
    piece.recompile()
    return piece


class _Compiled(nn.Module):
    def __init__(self, compiled: pipeline.Compiled) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, *args: Any) -> Any:
        return self.compiled(*args)


def compile_piecewise(fn: Callable[..., Any], args: Sequence[Any], policy: str | None = "sound",
                      donated: bool = True) -> Piecewise:
    """Split ``fn``'s graph at attention, compile each other piece, run once on ``args``."""
    gm, flat = dynamo_graph(fn, *args)
    split = split_at_attention(gm)
    compiled: dict[str, pipeline.Compiled] = {}
    for name, piece in list(split.named_children()):
        if not any(n.op == "call_function" and n.target in compat.ATTENTION_TARGETS for n in piece.graph.nodes):
            piece = piece if donated else _functional_only(piece)
            compiled[name] = pipeline.compile_fn(piece, policy=policy, dynamic=False)
            setattr(split, name, _Compiled(compiled[name]))
    with torch.inference_mode():
        split(*flat)
    result = Piecewise(split, flat)
    for name, c in compiled.items():
        rep = c.reports[-1]
        kept = rep.clones_after + len(getattr(rep, "folded", ()))
        result.pieces.append(PieceReport(name, rep.clones_before, rep.clones_after, c.donated[-1], kept))
    return result
