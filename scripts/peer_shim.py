"""pytest plugin: run vLLM's own IR-pipeline tests on CPU with a chosen pass in the clone slot.

Loaded with `-p peer_shim` by `peer_unit_tests.py` and `peer_ir_tests.py`; it changes only
what the tests see at run time, never vLLM's files. CLEANPASS_PEER_POLICY picks the pass:
- `real` leaves vLLM's `UnsafeCloneEliminationPass` in place (and keeps our plugin out of it);
- `cleanpass` puts our plugin in the slot as vLLM would load it (`vllm_plugin.register()`), and
  binds `VllmClonePass` to the name the tests import from `clone_elimination`;
- `vllm` or `sound` replace that class and vLLM's write predicate by stand-ins backed by the
  named cleanpass policy (the model of vLLM's rules, and the sound policy without folding).

On every arm, what a CPU machine lacks is stood in, so the tests whose logic does not depend
on the device run: our torch CPU provider (`workloads/vllm_ir/providers.py`) answers for the
`vllm_c` provider of `rms_norm` and `fused_add_rms_norm` (vLLM's kernels need CUDA; ours have
the same schemas and the same in-place/out-of-place shape), the skips of the IR functionalization
tests that only say "cuda and rocm" are lifted, a schema-only `_C::rotary_embedding` is defined
(FixFunctionalizationPass looks it up), and the piecewise test's own CompilationConfig gets the
CPU settings (`workloads/vllm_ir/backend.py` says why each). CLEANPASS_PEER_RESULTS names a JSON
file that gets each test's outcome, a one-line message for each failure, the skips lifted and
the class the slot held.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest

POLICY = os.environ.get("CLEANPASS_PEER_POLICY", "real")
POLICIES = ("real", "cleanpass", "vllm", "sound")
#: the skip reason of vLLM's IR functionalization tests: a device check, not a logic one
CUDA_ONLY_SKIP = "Only test on cuda and rocm platform"
PIECEWISE_TEST = "test_piecewise_compilation_with_donated_buffers"
STAND_IN_PROVIDER = "vllm_c"
_OUTCOMES: dict[str, str] = {}
_MESSAGES: dict[str, str] = {}
_LIFTED: list[str] = []


def _stand_ins(policy: str) -> tuple[type, Any]:
    from torch import fx
    from vllm.compilation.passes.inductor_pass import get_pass_context

    import cleanpass
    from cleanpass import reference
    from cleanpass.mutation import node_effect

    class CleanpassCloneElimination:
        """vLLM's pass interface (built from a config, called on a graph) over our policy."""

        def __init__(self, vllm_config: Any) -> None:
            self.vllm_config = vllm_config

        def __call__(self, graph: fx.Graph) -> None:
            ids = get_pass_context().donated_input_ids or set()
            position = {node: index for index, node in enumerate(graph.nodes)}
            placeholders = graph.find_nodes(op="placeholder")
            donated = tuple(i for i, node in enumerate(placeholders) if position[node] in ids)
            cleanpass.eliminate_clones_in_graph(graph, donated, policy)

    def writes(user: fx.Node, node: fx.Node) -> bool:
        if policy == "vllm":
            return reference.writes_clone(user, node)
        return node in node_effect(user).writes

    return CleanpassCloneElimination, writes


def _stand_in_vllm_c() -> None:
    """Our CPU provider under vLLM's `vllm_c` name, for the two ops it implements."""
    import vllm.kernels  # noqa: F401  (registers vLLM's providers first: the tests import it)
    from vllm.ir import ops

    from workloads.vllm_ir import providers

    ours = providers.register()
    for op in (ops.rms_norm, ops.fused_add_rms_norm):
        impl = copy.copy(op.impls[ours])
        impl.provider = STAND_IN_PROVIDER
        op.impls[STAND_IN_PROVIDER] = impl


def _put_pass_in_slot(policy: str) -> None:
    from vllm.compilation.passes.ir import clone_elimination

    if policy == "cleanpass":
        from cleanpass import vllm_plugin

        if not vllm_plugin.register():
            raise pytest.UsageError("cleanpass.vllm_plugin.register() left vLLM's pass in place")
        clone_elimination.UnsafeCloneEliminationPass = vllm_plugin.VllmClonePass
    elif policy in ("vllm", "sound"):
        clone_elimination.UnsafeCloneEliminationPass, clone_elimination.user_writes_to_node = \
            _stand_ins(policy)


def pytest_configure(config) -> None:
    if POLICY not in POLICIES:
        raise pytest.UsageError(f"CLEANPASS_PEER_POLICY={POLICY!r}; expected one of {POLICIES}")
    if POLICY != "cleanpass":
        os.environ["CLEANPASS_VLLM"] = "0"  # vLLM may load its plugins: ours stays out
    from workloads.vllm_ir.backend import ensure_rotary_schema

    ensure_rotary_schema()
    _stand_in_vllm_c()
    _put_pass_in_slot(POLICY)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # vLLM's own opt-out of its per-test cleanup (device memory, distributed state: none
        # here); it costs about a second a test on this CPU, a third of the run
        item.add_marker(pytest.mark.skip_global_cleanup)
        kept = [mark for mark in item.own_markers
                if not (mark.name == "skipif" and mark.kwargs.get("reason") == CUDA_ONLY_SKIP)]
        if len(kept) != len(item.own_markers):
            item.own_markers[:] = kept
            _LIFTED.append(_test_id(item.nodeid))


@pytest.fixture(autouse=True)
def _cpu_compilation_config(request, monkeypatch) -> None:
    """The piecewise test builds its own CompilationConfig: give it the CPU settings."""
    if request.node.originalname != PIECEWISE_TEST:
        return
    import vllm.config

    from workloads.vllm_ir.backend import vllm_config

    original = vllm.config.CompilationConfig
    cpu_passes = vllm_config().compilation_config.pass_config  # every fusion flag off

    def cpu_config(**kwargs: Any) -> Any:
        kwargs.setdefault("compile_sizes", [])
        kwargs.setdefault("pass_config", copy.deepcopy(cpu_passes))
        return original(**kwargs)

    monkeypatch.setattr(vllm.config, "CompilationConfig", cpu_config)


def _test_id(nodeid: str) -> str:
    """`tests/compile/passes/ir/test_x.py::T::t[p]` -> `test_x.py::T::t[p]`."""
    path, _, rest = nodeid.partition("::")
    return f"{os.path.basename(path)}::{rest}"


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        test = _test_id(report.nodeid)
        _OUTCOMES[test] = report.outcome
        if report.failed:
            _MESSAGES[test] = _one_line(report)


def _one_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return " ".join(text.split())[:300]


def _slot_names() -> dict[str, str]:
    from vllm.compilation.passes import pass_manager
    from vllm.compilation.passes.ir import clone_elimination

    def name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    return {"pass_manager": name(pass_manager.UnsafeCloneEliminationPass),
            "clone_elimination": name(clone_elimination.UnsafeCloneEliminationPass)}


def pytest_sessionfinish(session) -> None:
    path = os.environ.get("CLEANPASS_PEER_RESULTS")
    if path:
        with open(path, "w") as handle:
            json.dump({"policy": POLICY, "outcomes": _OUTCOMES, "messages": _MESSAGES,
                       "lifted_skips": _LIFTED, "slot": _slot_names()}, handle, indent=1)
