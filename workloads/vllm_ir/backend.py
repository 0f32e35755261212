"""Compile a model through vLLM's own `VllmBackend`, with a chosen pass in vLLM's clone slot.

The arms (`ARMS`): `none` (the slot does nothing: lowering's clones stay), `vllm` (vLLM's
`UnsafeCloneEliminationPass`), `cleanpass` and `cleanpass_nofold` (cleanpass's vLLM plugin pass,
with and without folding). The slot is swapped for the duration of one compile exactly where the
plugin swaps it, so every arm runs vLLM's pipeline as a user gets it: pre-grad functionalization
(donation), IR lowering with our CPU provider, the slot, PostCleanup, FixFunctionalization,
piecewise splitting at vLLM's splitting ops. Each graph the slot sees is recorded (clones before
and after) by a thin wrapper, whichever pass runs inside it.

CPU settings, each avoiding a failure of vLLM on a machine without CUDA:
- every fusion flag of `PassConfig` off: their passes are imported only on CUDA/XPU
  (`NameError: RMSNormQuantFusionPass` / `ActivationQuantFusionPass` in `configure`);
- `compile_sizes=[]` (left `None` on CPU, the piecewise backend asserts on the shape);
- `ir_enable_torch_wrap=True`, or IR ops are traced through and never reach the lowering;
- a schema-only `_C::rotary_embedding` where vLLM's kernel library is absent (the CUDA wheel):
  `FixFunctionalizationPass` looks the op up on every call.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import fx, nn

from workloads.vllm_ir import providers

ARMS = ("none", "vllm", "cleanpass", "cleanpass_nofold")
SLOT_MODULE = "vllm.compilation.passes.pass_manager"
SLOT_NAME = "UnsafeCloneEliminationPass"
_FUSION_FLAGS = ("fuse_norm_quant", "fuse_act_quant", "fuse_attn_quant", "fuse_allreduce_rms",
                 "enable_qk_norm_rope_fusion", "fuse_rope_kvcache_cat_mla", "fuse_act_padding",
                 "fuse_mla_dual_rms_norm", "fuse_rope_kvcache", "fuse_qk_norm_rope_kvcache")
CLONE = torch.ops.aten.clone.default


@dataclass
class SlotRecord:
    """One graph as the clone slot saw it."""

    clones_before: int
    clones_after: int
    donated_input_ids: tuple[int, ...]


@dataclass
class Compiled:
    """A model compiled by `VllmBackend` in one arm: call `function` inside `context()`."""

    arm: str
    function: Callable[..., Any]
    context: Callable[[], contextlib.AbstractContextManager]
    records: list[SlotRecord] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)  # cleanpass CloneReports (cleanpass arms)

    def call(self, *args: Any) -> Any:
        with self.context():
            return self.function(*args)

    @property
    def clones_before(self) -> int:
        return sum(r.clones_before for r in self.records)

    @property
    def clones_after(self) -> int:
        return sum(r.clones_after for r in self.records)


def _count_clones(graph: fx.Graph) -> int:
    return sum(1 for node in graph.nodes if node.op == "call_function" and node.target is CLONE)


def ensure_rotary_schema() -> None:
    """Give `_C::rotary_embedding` a schema where vLLM's kernel library is missing (never run)."""
    if hasattr(torch.ops._C, "rotary_embedding"):
        return
    library = torch.library.Library("_C", "FRAGMENT")  # noqa: F841  (kept alive by torch)
    library.define("rotary_embedding(Tensor positions, Tensor(a!) query, Tensor(b!)? key, "
                   "int head_size, Tensor cos_sin_cache, bool is_neox) -> ()")
    _LIBRARIES.append(library)


_LIBRARIES: list[Any] = []


def _inner_pass(arm: str, vllm_config: Any) -> Any:
    if arm == "none":
        return None
    if arm == "vllm":
        from vllm.compilation.passes.ir.clone_elimination import UnsafeCloneEliminationPass
        return UnsafeCloneEliminationPass(vllm_config)
    from cleanpass.vllm_plugin import VllmClonePass
    return VllmClonePass(vllm_config, fold=arm == "cleanpass")


def _recording_slot(arm: str, compiled: Compiled) -> type:
    """A class for vLLM's slot: builds the arm's pass and records each graph it is called on."""

    class RecordingSlot:
        def __init__(self, vllm_config: Any) -> None:
            self.inner = _inner_pass(arm, vllm_config)

        def __call__(self, graph: fx.Graph) -> None:
            from vllm.compilation.passes.inductor_pass import get_pass_context

            before = _count_clones(graph)
            if self.inner is not None:
                self.inner(graph)
                compiled.reports.extend(getattr(self.inner, "reports", [])[-1:])
            ids = tuple(sorted(get_pass_context().donated_input_ids or ()))
            compiled.records.append(SlotRecord(before, _count_clones(graph), ids))

        def uuid(self) -> str:
            return f"harness-slot:{arm}:" + (self.inner.uuid() if self.inner is not None else "none")

    return RecordingSlot


@contextlib.contextmanager
def clone_slot(arm: str, compiled: Compiled) -> Iterator[None]:
    """vLLM's clone slot holds the arm's (recording) pass inside the block."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; expected one of {ARMS}")
    module = importlib.import_module(SLOT_MODULE)
    original = getattr(module, SLOT_NAME)
    setattr(module, SLOT_NAME, _recording_slot(arm, compiled))
    try:
        yield
    finally:
        setattr(module, SLOT_NAME, original)


def default_provider(device: str) -> str:
    """The provider a user of `device` gets first: vLLM's own `vllm_c` where it is supported (a
    CUDA machine with vLLM's kernels), else our torch-written one (registered here)."""
    import vllm.kernels  # noqa: F401  registers vLLM's own providers
    from vllm import ir

    own = ir.ops.fused_add_rms_norm.impls.get("vllm_c")
    if device != "cpu" and own is not None and own.supported:
        return "vllm_c"
    return providers.register()


def vllm_config(splitting_ops: Sequence[str] = (), provider: str | None = None) -> Any:
    """The config a CPU user would write: vLLM's compile pipeline with our provider first."""
    from vllm.config import (CompilationConfig, CompilationMode, KernelConfig, PassConfig,
                             VllmConfig)
    from vllm.config.kernel import IrOpPriorityConfig

    name = provider or providers.register()
    compilation = CompilationConfig(
        mode=CompilationMode.VLLM_COMPILE, custom_ops=["all"], compile_sizes=[],
        splitting_ops=list(splitting_ops), ir_enable_torch_wrap=True,
        pass_config=PassConfig(**{flag: False for flag in _FUSION_FLAGS}))
    from vllm import ir

    def first(op: Any) -> list[str]:  # a provider may implement only some of the ops
        return [name, "native"] if name in op.impls else ["native"]

    kernels = KernelConfig(ir_op_priority=IrOpPriorityConfig(
        fused_add_rms_norm=first(ir.ops.fused_add_rms_norm), rms_norm=first(ir.ops.rms_norm)))
    return VllmConfig(compilation_config=compilation, kernel_config=kernels)


def compile_model(model: nn.Module, inputs: Sequence[torch.Tensor], arm: str,
                  splitting_ops: Sequence[str] = (), dynamic_dims: Sequence[int | None] = (),
                  provider: str | None = None) -> Compiled:
    """Compile `model` with `VllmBackend` in `arm` and run it once on `inputs` (which it may
    write, if the model donates them). `dynamic_dims[i]`: the dim of input i marked dynamic
    (token counts), so one compile serves every size. The first call compiles: a caller that
    wants Inductor's generated code captures it around this call. Dynamo's caches are not
    reset here, so the arms of one model stay callable side by side (a caller resets between
    models)."""
    from vllm.compilation.backends import VllmBackend

    os.environ["VLLM_DISABLE_COMPILE_CACHE"] = "1"  # every arm compiles: no cached code
    ensure_rotary_schema()
    config = vllm_config(splitting_ops, provider)
    context = functools.partial(running, config)
    compiled = Compiled(arm, function=lambda *a: None, context=context)
    # Inductor's FX graph cache keys a graph without vLLM's pass context: a model and its
    # functional twin (same graph, other donation) would share code. Every arm compiles.
    with context(), clone_slot(arm, compiled), torch._inductor.config.patch(fx_graph_cache=False):
        compiled.function = torch.compile(model, backend=VllmBackend(config),
                                          fullgraph=not splitting_ops)
        for tensor, dim in zip(inputs, dynamic_dims):
            if dim is not None:
                torch._dynamo.mark_dynamic(tensor, dim)
        compiled.function(*inputs)
    return compiled


@contextlib.contextmanager
def running(config: Any, priority: Any = None) -> Iterator[None]:
    """What vLLM has in place while a model runs: its config and the IR op priorities (the
    config's own unless `priority` is given)."""
    from vllm.config import set_current_vllm_config

    chosen = priority if priority is not None else config.kernel_config.ir_op_priority
    with set_current_vllm_config(config), chosen.set_priority():
        yield


def native_context() -> contextlib.AbstractContextManager:
    """Run IR ops eagerly with vLLM's native implementations (the numerics reference) inside."""
    config = vllm_config()
    native = type(config.kernel_config.ir_op_priority)(fused_add_rms_norm=["native"],
                                                       rms_norm=["native"])
    return running(config, native)


def eager_native(model: nn.Module, inputs: Sequence[torch.Tensor]) -> Any:
    """The model run eagerly with vLLM's native implementations."""
    with native_context():
        return model(*inputs)
