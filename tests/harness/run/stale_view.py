"""A real graph where Inductor hands our in-place kernel a temporary instead of the view.

``StaleRewire`` is a post-grad pass that does what a careless view pass would: it replaces
``rms_norm(clone(view))`` (the IR op, traced by Inductor) by the in-place kernel on the view
itself, and (``stale=True``) copies the IR node's meta to the kernel node, so
``meta["eager_input_vals"]`` still describes the contiguous clone. Inductor's exact-stride rule
for custom ops then copies the strided view into a contiguous temporary, runs the kernel on
it and copies the result back: right values, two extra copies, and exactly what the view check
must catch. With ``stale=False`` the kernel gets ``reinterpret_tensor`` of the base.
"""
from __future__ import annotations

import torch
from torch import fx, nn

import workloads.ir  # noqa: F401  (registers the IR ops and kernels)
from workloads import compat as wcompat

IR_RMS_NORM = torch.ops.cleanpass_ir.rms_norm.default
KERNEL = torch.ops.cleanpass_kernels.rms_norm_torch_.default
CLONE = torch.ops.aten.clone.default


class StaleRewire(wcompat.CustomGraphPass):
    def __init__(self, stale: bool) -> None:
        self.stale = stale

    def __call__(self, graph: fx.Graph) -> None:
        for node in list(graph.nodes):
            if node.target is not IR_RMS_NORM or getattr(node.args[0], "target", None) is not CLONE:
                continue
            clone = node.args[0]
            view = clone.args[0]
            with graph.inserting_before(node):
                kernel = graph.call_function(KERNEL, (view, *node.args[1:]))
            if self.stale:
                kernel.meta.update(node.meta)  # eager_input_vals: the clone's contiguous layout
            kernel.meta["val"] = None
            node.replace_all_uses_with(view)
            graph.erase_node(node)
            graph.erase_node(clone)
        graph.lint()

    def uuid(self) -> str:
        return f"stale-rewire-{self.stale}"


class NormOfHalf(nn.Module):
    """rms_norm of the left half of ``cat([x, 2x])``: a strided view of a fresh buffer whose
    value equals ``rms_norm(x)`` (so the rms_norm workload's reference still applies)."""

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = torch.cat([x, x * 2], dim=-1)
        return torch.ops.cleanpass_ir.rms_norm(wide[:, :x.shape[-1]].clone(), self.weight, self.eps)


def compile_with(stale: bool):
    """``harness.run.compile.apply`` compiled with the rewiring pass (``fn`` is an argument)."""
    from harness.run.compile import apply

    return torch.compile(apply, backend="inductor", dynamic=False, fullgraph=True,
                         options={"post_grad_custom_post_pass": StaleRewire(stale)})
