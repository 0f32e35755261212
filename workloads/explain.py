"""``cleanpass.explain`` with this project's IR lowering: the clones our lowering makes, what the
pass decides on each, why, and what it saves, for a user's own function or module.

    from workloads import explain
    print(explain.explain(layer, positions, hidden))    # a transformers decoder layer: one call

cleanpass cannot import workloads (the dependency runs harness -> workloads -> cleanpass), so
``cleanpass.explain.explain`` takes the lowering as an argument; ``lower`` here is ours: the
donation pre-pass (``maybe_inplace`` calls give up activations) and the IR lowering, exactly as
``workloads.pipeline`` compiles a workload, with the clone-elimination slot taken by a capture
of the graph. A transformers Llama/Qwen2/Mistral model or decoder layer is first given vLLM's
forward by ``workloads.hf.adapt`` (its inputs are then those of the adapted forward).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import torch
from torch import fx

import cleanpass.explain as core

from workloads import compat, donation, hf, pipeline


class _Capture:
    """Takes the clone-elimination slot of a ``PipelinePass``: keeps the lowered graph."""

    def __init__(self, sink: list[core.Lowered], names: list[tuple[str, ...]]) -> None:
        self.sink, self.names = sink, names

    def __call__(self, graph: fx.Graph, donated: tuple[int, ...]) -> pipeline.CountReport:
        self.sink.append(core.Lowered(core.copy_graph(graph), donated, self.names[-1] if self.names else ()))
        clones = sum(1 for n in graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.clone.default)
        return pipeline.CountReport(clones, clones)

    def uuid(self) -> str:
        return f"explain-capture-{id(self)}"


class _NamedDonation(compat.CustomGraphPass):
    """The donation pre-pass, also recording Dynamo's placeholder names."""

    def __init__(self, inner: donation.DonationPass, names: list[tuple[str, ...]]) -> None:
        self.inner, self.names = inner, names

    def __call__(self, graph: fx.Graph) -> None:
        self.names.append(core.input_names(graph))
        self.inner(graph)

    def uuid(self) -> str:
        return self.inner.uuid()


def _adapted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A transformers model or decoder layer gets vLLM's forward (``workloads.hf.adapt``)."""
    if isinstance(fn, torch.nn.Module) and type(fn).__module__.startswith("transformers."):
        return hf.adapt(fn)
    return fn


def lower(fn: Callable[..., Any], inputs: Sequence[Any], providers: Sequence[str] | None = None) -> list[core.Lowered]:
    """Our ``cleanpass.explain.Lower``: compile ``fn`` (adapted, when it is a transformers model
    or layer) through the donation pre-pass and the IR lowering; return each graph as it reaches
    clone elimination, its inputs named after the compiled forward's parameters."""
    fn = _adapted(fn)
    params = core.parameters_of(fn)
    state = donation.DonationState()
    graphs: list[core.Lowered] = []
    names: list[tuple[str, ...]] = []
    post = pipeline.PipelinePass(_Capture(graphs, names), providers, state)
    pre = _NamedDonation(donation.DonationPass(state), names)
    compiled = torch.compile(compat.fresh_entry(fn), backend="inductor", fullgraph=False,
                             options=compat.inductor_options(pre, post))
    compiled(*inputs)
    return [dataclasses.replace(g, inputs=tuple(core.user_name(n, params) for n in g.inputs)) for g in graphs]


def explain(fn: Callable[..., Any], *inputs: Any, **kwargs: Any) -> core.Explanation:
    """``cleanpass.explain.explain`` with our lowering (a transformers model or decoder layer is
    adapted first; ``inputs`` are then the adapted forward's: ``positions, hidden[, residual]``)."""
    return core.explain(fn, *inputs, lower=lower, **kwargs)
