"""Synthetic graphs the size of real models' (layer after layer of fused add + norm with the
lowering's clones), built directly with fake tensors so that building stays cheap."""
from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import Graph

from .ops import ops

aten = torch.ops.aten
NODES_PER_LAYER = 4


def norm_chain_graph(num_nodes: int, tokens: int = 8, hidden: int = 64) -> Graph:
    """x, residual, weight -> per layer: clone x, clone residual, fused add + norm in place,
    a pointwise "projection"; about `num_nodes` nodes in all."""
    graph = Graph()
    mode = FakeTensorMode()
    with mode:
        values = {name: torch.empty(tokens, hidden) for name in ("x", "residual")}
        values["weight"] = torch.empty(hidden)

    def placeholder(name):
        node = graph.placeholder(name)
        node.meta["val"] = values[name]
        return node

    x, residual, weight = placeholder("x"), placeholder("residual"), placeholder("weight")
    with mode:
        for _ in range(max(1, num_nodes // NODES_PER_LAYER)):
            cx = graph.call_function(aten.clone.default, (x,))
            cx.meta["val"] = torch.empty_like(x.meta["val"])
            cr = graph.call_function(aten.clone.default, (residual,))
            cr.meta["val"] = torch.empty_like(residual.meta["val"])
            kernel = graph.call_function(ops.fused_add_norm_.default, (cx, cr, weight))
            kernel.meta["val"] = None
            projected = graph.call_function(aten.mul.Tensor, (cx, weight))
            projected.meta["val"] = torch.empty_like(cx.meta["val"])
            x, residual = projected, cr
    graph.output((x, residual))
    return graph
