"""cleanpass in vLLM's own compile pipeline (`VllmBackend`), where vLLM is installed.

Runs in `.venv-peer` (vLLM 0.33.0, `make vllm`; CI builds it); skipped elsewhere with the reason.
The plain-venv twin of the plugin logic is tests/vllm/test_plugin_slot.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Optional

import pytest
import torch
from torch import Tensor

import cleanpass
from harness.run import vllm_backend, vllm_real

REASON = vllm_real.unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=str(REASON))]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def rows_by_model():
    from workloads.vllm_ir.models import MODELS

    torch.set_num_threads(1)
    table = {}
    for name, spec in MODELS.items():
        rows = vllm_backend.model_rows(spec, torch.float32, hidden=64, tokens=(16, 5), timed=False)
        table[name] = {row.variant: row for row in rows}
    return table


def test_every_model_compiles_through_cleanpass_exactly_with_no_clone_or_copy_left(rows_by_model):
    for name, rows in rows_by_model.items():
        for variant in ("cleanpass", "cleanpass_nofold", "lowered"):
            row = rows[variant]
            assert row.ok, f"{name}/{variant}: {row.error}"
        ours = rows["cleanpass"]
        assert ours.bitwise_equal is True and ours.numerics.value in ("bitwise_identical", "within_tolerance")
        # our provider declares an out-of-place form: no clone left, and no copy in the code
        assert (ours.clones_after, ours.copies) == (0, 0), name


def test_cleanpass_never_leaves_more_clones_than_vllms_pass_where_vllm_is_right(rows_by_model):
    for name, rows in rows_by_model.items():
        theirs = rows["vllm_real"]
        if theirs.ok:
            assert rows["cleanpass"].clones_after <= theirs.clones_after, name
            assert rows["cleanpass_nofold"].clones_after <= theirs.clones_after, name


def test_vllms_pass_is_wrong_exactly_where_the_model_says(rows_by_model):
    from workloads.vllm_ir.models import MODELS

    wrong = {name for name, rows in rows_by_model.items() if not rows["vllm_real"].ok}
    assert wrong == {name for name, spec in MODELS.items() if "vllm" in spec.expected_wrong}
    assert "non-donated inputs" in rows_by_model["view_of_input"]["vllm_real"].error


def test_folding_is_what_removes_the_kept_clones(rows_by_model):
    rows = rows_by_model["fused_add_rms_norm"]
    assert (rows["lowered"].clones_after, rows["vllm_real"].clones_after) == (2, 2)
    assert (rows["cleanpass_nofold"].clones_after, rows["cleanpass"].clones_after) == (2, 0)
    assert rows["cleanpass"].bytes_exact < rows["cleanpass_nofold"].bytes_exact


# ---- a provider from outside the repository -----------------------------------------------

@torch.library.custom_op("thirdparty_norms::add_norm_", mutates_args=("x", "x_residual"))
def _third_inplace(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float) -> None:
    from vllm import ir
    out, residual = ir.ops.fused_add_rms_norm.impls["native"].impl_fn(x, x_residual, weight, epsilon)
    x_residual.copy_(residual)
    x.copy_(out)


@torch.library.custom_op("thirdparty_norms::add_norm_out", mutates_args=("out", "residual_out"))
def _third_out(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
               out: Tensor, residual_out: Tensor) -> None:
    from vllm import ir
    normed, residual = ir.ops.fused_add_rms_norm.impls["native"].impl_fn(x, x_residual, weight, epsilon)
    residual_out.copy_(residual)
    out.copy_(normed)


@torch.library.custom_op("thirdparty_norms::bare_add_norm_", mutates_args=("x", "x_residual"))
def _bare_inplace(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float) -> None:
    _third_inplace(x, x_residual, weight, epsilon)


for _op in (_third_inplace, _third_out, _bare_inplace):
    _op.register_fake(lambda *args, **kwargs: None)


def _register_provider(name: str, declare: bool) -> str:
    """A provider written the way a kernel author outside this repository would."""
    from vllm import ir

    def supported(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
                  variance_size: Optional[int] = None) -> bool:
        return variance_size is None

    kernel = torch.ops.thirdparty_norms.add_norm_ if declare else torch.ops.thirdparty_norms.bare_add_norm_

    @ir.ops.fused_add_rms_norm.register_impl(name, supports_args=supported, inplace=True)
    def impl(x: Tensor, x_residual: Tensor, weight: Optional[Tensor], epsilon: float,
             variance_size: Optional[int] = None) -> tuple[Tensor, Tensor]:
        kernel(x, x_residual, weight, epsilon)
        return x, x_residual

    if declare:  # only cleanpass's public registration
        cleanpass.register_out_of_place(torch.ops.thirdparty_norms.add_norm_.default,
                                        torch.ops.thirdparty_norms.add_norm_out.default,
                                        outputs={"x": "out", "x_residual": "residual_out"})
    return name


def _compile_with(provider: str, model_name: str, arm: str):
    from workloads.vllm_ir import backend
    from workloads.vllm_ir.models import MODELS

    spec = MODELS[model_name]
    torch._dynamo.reset()
    with torch.no_grad():
        model, inputs = spec.build(16, 64, torch.float32)
        reference = backend.eager_native(model, tuple(t.clone() for t in inputs))
        given = tuple(t.clone() for t in inputs)
        compiled = backend.compile_model(model, given, arm, spec.splitting_ops, (0,) * len(inputs),
                                         provider=provider)
        given = tuple(t.clone() for t in inputs)
        out = compiled.call(*given)
    assert all(torch.equal(a, b) for a, b in zip(out, reference))
    assert all(torch.equal(a, b) for i, (a, b) in enumerate(zip(given, inputs)) if i not in spec.donated)
    return compiled


def test_a_third_party_provider_that_declares_its_form_gets_folding():
    provider = _register_provider("third_party_declared", declare=True)
    ours = _compile_with(provider, "vllm_functional", "cleanpass")
    theirs = _compile_with(provider, "vllm_functional", "vllm")
    assert (ours.clones_before, ours.clones_after) == (4, 0)
    assert theirs.clones_after == 3
    assert sum(len(r.folded) for r in ours.reports) > 0


def test_a_provider_that_declares_nothing_gets_the_sound_removals_and_no_crash():
    provider = _register_provider("third_party_bare", declare=False)
    for model in ("vllm_functional", "vllm_mixed"):
        ours = _compile_with(provider, model, "cleanpass")
        theirs = _compile_with(provider, model, "vllm")
        assert ours.clones_after <= theirs.clones_after
        assert all(len(r.folded) == 0 for r in ours.reports)


# ---- the plugin as vLLM loads it ----------------------------------------------------------

_IN_VLLM = textwrap.dedent("""
    import os, torch
    from vllm.config.logging import LoggingConfig
    from vllm.logger import configure_logging
    from vllm.plugins import load_general_plugins
    configure_logging(LoggingConfig())  # what vLLM's engine and CLI do first
    load_general_plugins()
    import vllm.compilation.passes.pass_manager as manager
    print("slot:", manager.UnsafeCloneEliminationPass.__module__)
    if os.environ.get("CLEANPASS_VLLM") != "0":
        from workloads.vllm_ir import backend
        from workloads.vllm_ir.models import MODELS
        from vllm.compilation.backends import VllmBackend
        spec = MODELS["vllm_functional"]
        model, inputs = spec.build(8, 32, torch.float32)
        config = backend.vllm_config()
        backend.ensure_rotary_schema()
        with torch.no_grad(), backend.running(config):
            torch.compile(model, backend=VllmBackend(config), fullgraph=True)(*inputs)
""")


def _in_vllm(**env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="INFO",
                       VLLM_DISABLE_COMPILE_CACHE="1", TORCHINDUCTOR_FX_GRAPH_CACHE="0",
                       PYTHONPATH=ROOT, **env)
    return subprocess.run([sys.executable, "-c", _IN_VLLM], env=environment, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def test_vllm_loads_the_plugin_through_its_entry_point_and_logs_each_graph():
    done = _in_vllm()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "slot: cleanpass.vllm_plugin" in done.stdout
    log = done.stdout + done.stderr
    assert "cleanpass: in vLLM" in log
    assert "cleanpass: graph" in log and "clones 4 -> 0 (removed 1, folded 3, kept 0)" in log


def test_the_off_switch_keeps_vllms_pass_in_a_vllm_process():
    done = _in_vllm(CLEANPASS_VLLM="0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "slot: vllm.compilation.passes.ir.clone_elimination" in done.stdout


def test_the_default_provider_is_vllms_own_only_where_it_is_supported():
    from vllm import ir
    from workloads.vllm_ir import backend, providers

    assert backend.default_provider("cpu") == providers.PROVIDER
    supported = ir.ops.fused_add_rms_norm.impls["vllm_c"].supported  # False without vLLM's CUDA kernels
    assert backend.default_provider("cuda") == ("vllm_c" if supported else providers.PROVIDER)
