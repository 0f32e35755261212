"""The CPU test bed as an opt-in vLLM general plugin (entry point `cleanpass_cpu_testbed`).

It does nothing unless `CLEANPASS_VLLM_CPU_TESTBED=1`, so installing this project never changes
vLLM's behaviour for a user. When on, in every process vLLM starts (vLLM loads general plugins in
the calling process, the engine core and each worker), it:

1. registers the `cpu_c` provider for vLLM's norm IR ops (`workloads.vllm_ir.c_kernels`);
2. wraps the CPU platform's `check_and_update_config` so that a config asking for
   `VLLM_COMPILE` keeps it: vllm-cpu turns it into one Dynamo trace plus plain Inductor with
   `ir_enable_torch_wrap=False`, under which the IR lowering and the clone slot never run;
3. defines, schema only, the quantised `_C` ops vllm-cpu's library lacks but vLLM's
   `FixFunctionalizationPass` names on every `auto_functionalized` node it meets (fp32 linears on
   CPU are such nodes, `_C.onednn_mm`): without them it fails with `AttributeError: '_OpNamespace'
   '_C' object has no attribute 'fused_add_rms_norm_static_fp8_quant'`. They have no kernel and no
   graph calls them; only their names are compared;
4. with `CLEANPASS_VLLM_CPU_TESTBED_SLOT=off`, puts a pass that does nothing in vLLM's clone slot
   (`PostGradPassManager.clone_elimination`): the arm with no clone pass;
5. with `CLEANPASS_VLLM_CPU_TESTBED_DIR=<dir>`, counts the clones of every compiled piece before
   and after whatever pass is in the clone slot (vLLM's, cleanpass's or none) and at the end of
   the post-grad passes, one JSON file per piece (`<pid>-<n>.json`).

The settings that a config can carry (fusion flags, `compile_sizes`, provider priority) are passed
to `vllm.LLM` by `harness.vllm_engine.arms`, not set here.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import os
from pathlib import Path
from typing import Any

ENABLE = "CLEANPASS_VLLM_CPU_TESTBED"
SLOT = "CLEANPASS_VLLM_CPU_TESTBED_SLOT"
COUNT_DIR = "CLEANPASS_VLLM_CPU_TESTBED_DIR"

log = logging.getLogger(__name__)
_done = False


def register() -> None:
    """vLLM's general-plugin hook: idempotent, a no-op unless the test bed is asked for."""
    global _done
    if _done or os.environ.get(ENABLE) != "1":
        return
    _done = True
    from workloads.vllm_ir import c_kernels

    c_kernels.register()
    _keep_vllm_compile()
    _name_missing_c_ops()
    _wrap_pass_manager(os.environ.get(SLOT, "on") == "off", os.environ.get(COUNT_DIR))


def _keep_vllm_compile() -> None:
    """Step 2: undo vllm-cpu's rewrite of `VLLM_COMPILE` after its platform hook ran."""
    from vllm.config import CompilationMode
    from vllm.platforms import current_platform

    platform = type(current_platform)
    if not current_platform.is_cpu() or getattr(platform, "_cleanpass_testbed", False):
        return
    original = platform.check_and_update_config.__func__

    @classmethod  # type: ignore[misc]
    @functools.wraps(original)
    def check_and_update_config(cls: Any, vllm_config: Any) -> None:
        asked = vllm_config.compilation_config.mode
        original(cls, vllm_config)
        config = vllm_config.compilation_config
        if asked == CompilationMode.VLLM_COMPILE and config.mode != asked:
            config.mode = CompilationMode.VLLM_COMPILE
            config.backend = "inductor"
            config.ir_enable_torch_wrap = True

    platform.check_and_update_config = check_and_update_config
    platform._cleanpass_testbed = True


#: the `_C` ops `FixFunctionalizationPass` looks up without checking that they exist
LOOKED_UP_C_OPS = ("fused_add_rms_norm_static_fp8_quant", "rms_norm_dynamic_per_token_quant",
                   "rms_norm_static_fp8_quant", "silu_and_mul_quant", "fused_qk_norm_rope")
_library: Any = None  # the fragment must outlive register(): dropping it removes the ops


def _name_missing_c_ops() -> list[str]:
    """Step 3: a schema-only `_C::<name>(Tensor(a!) result) -> ()` for each missing name."""
    global _library
    import torch

    missing = [name for name in LOOKED_UP_C_OPS if not hasattr(torch.ops._C, name)]
    if missing:
        _library = _library or torch.library.Library("_C", "FRAGMENT")
        for name in missing:
            _library.define(f"{name}(Tensor(a!) result) -> ()")
    return missing


class _EmptySlot:
    """Step 4: the clone slot with no pass in it (its own uuid keeps Inductor's cache apart)."""

    def __call__(self, graph: Any) -> None:
        return None

    def uuid(self) -> str:
        return "cleanpass-testbed-empty-clone-slot"


def count_clones(graph: Any) -> int:
    """The `aten.clone` nodes of an FX graph."""
    import torch

    return len(graph.find_nodes(op="call_function", target=torch.ops.aten.clone.default))


class _CountingSlot:
    """Step 5: counts clones around the pass in the clone slot; delegates everything else."""

    def __init__(self, inner: Any, record: dict[str, Any]) -> None:
        self.inner, self.record = inner, record

    def __call__(self, graph: Any) -> None:
        self.record["clones_lowered"] = count_clones(graph)
        self.inner(graph)
        self.record["clones_after_slot"] = count_clones(graph)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _wrap_pass_manager(empty_slot: bool, count_dir: str | None) -> None:
    from vllm.compilation.passes.pass_manager import PostGradPassManager

    if getattr(PostGradPassManager, "_cleanpass_testbed", False):
        return
    configure, call = PostGradPassManager.configure, PostGradPassManager.__call__
    serial = itertools.count()

    @functools.wraps(configure)
    def configure_(self: Any, config: Any) -> None:
        configure(self, config)
        if empty_slot:
            self.clone_elimination = _EmptySlot()

    @functools.wraps(call)
    def call_(self: Any, graph: Any) -> None:
        if count_dir is None:
            return call(self, graph)
        from vllm.compilation.passes.inductor_pass import get_pass_context

        record: dict[str, Any] = {"pid": os.getpid(), "n": next(serial),
                                  "slot": type(self.clone_elimination).__name__,
                                  "compile_range": str(get_pass_context().compile_range)}
        inner = self.clone_elimination
        self.clone_elimination = _CountingSlot(inner, record)
        try:
            call(self, graph)
        finally:
            self.clone_elimination = inner
        record["clones_final"] = count_clones(graph)
        path = Path(count_dir) / f"{record['pid']}-{record['n']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))

    PostGradPassManager.configure, PostGradPassManager.__call__ = configure_, call_
    PostGradPassManager._cleanpass_testbed = True
