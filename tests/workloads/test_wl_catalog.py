"""The catalog: discovery, suites, real shapes, builds, byte models, ideal twins."""
from __future__ import annotations

import pytest
import torch

from workloads import catalog, numerics
from workloads.dims import MODELS
from workloads.selfcheck import as_tuple

WORKLOADS = sorted(catalog.all_workloads())
REQUIRED = {"rms_norm", "fused_add_rms_norm", "norm_chain", "llama_block", "donated_chain"}
REAL_HIDDEN = {m.hidden for m in MODELS.values() if not m.name.endswith("-gqa")}


def test_discovers_the_required_workloads() -> None:
    assert REQUIRED <= set(WORKLOADS)
    assert catalog.get("rms_norm").name == "rms_norm"
    with pytest.raises(KeyError, match="unknown workload"):
        catalog.get("nope")


# Real-model workloads stay out of CI's gated smoke suite (minutes of compile on 2 cores); their
# tests in tests/workloads cover them on every CI run. Every other workload is in smoke.
OUTSIDE_SMOKE = {"hf_llama", "hf_qwen2", "hf_mistral", "hf_llama_layer_views"}


def test_only_the_real_models_stay_out_of_the_smoke_suite() -> None:
    assert {n for n, wl in catalog.all_workloads().items() if not wl.shapes("smoke")} == OUTSIDE_SMOKE


@pytest.mark.parametrize("name", WORKLOADS)
def test_suites_and_shapes(name: str) -> None:
    wl = catalog.get(name)
    for suite in catalog.SUITES:
        shapes = wl.shapes(suite)
        assert shapes or (suite == "smoke" and name in OUTSIDE_SMOKE)
        assert all(isinstance(s, catalog.Shape) for s in shapes)
        assert wl.dtypes(suite)
        assert all(s.dims.hidden == s.hidden for s in shapes)
    assert all(s.hidden in REAL_HIDDEN for s in wl.shapes("nightly"))
    assert max((s.num_tokens for s in wl.shapes("smoke")), default=0) <= 32
    assert set(wl.expected_clones) == {"lowered", "vllm", "cleanpass"}
    with pytest.raises(ValueError):
        wl.shapes("weekly")


def test_real_shapes_where_they_matter() -> None:
    assert {s.hidden for s in catalog.get("rms_norm").shapes("default")} == {4096, 8192}
    nightly = catalog.get("llama_block").shapes("nightly")
    assert {s.model for s in nightly} == {"llama-3.1-8b", "llama-3.1-70b"}
    assert max(s.num_tokens for s in catalog.get("rms_norm").shapes("nightly")) == 16384
    assert max(s.num_tokens for s in catalog.get("llama_block").shapes("default")) <= 128  # O(T^2) on CPU


@pytest.mark.parametrize("name", WORKLOADS)
def test_build_and_ideal_twin_match_the_reference(name: str) -> None:
    wl = catalog.get(name)
    if wl.unavailable():
        pytest.skip(wl.unavailable())
    shape = wl.shapes("test")[0]
    built = wl.build(shape, torch.float32, "cpu")
    assert built.inputs[0].shape[built.dynamic_dim] == shape.num_tokens
    ref = as_tuple(built.reference())
    fns = [f for f in (built.fn, built.ideal_fn, built.native_fn) if f is not None]
    for out in (as_tuple(fn(*built.fresh_inputs())) for fn in fns):
        assert len(out) == len(ref)
        for o, r in zip(out, ref):
            assert numerics.allclose(o, r, torch.float32), numerics.max_abs_err(o, r)


@pytest.mark.parametrize("name", WORKLOADS)
def test_model_bytes_grow_with_tokens_and_dtype(name: str) -> None:
    wl = catalog.get(name)
    s = wl.shapes("nightly")[0]
    small = wl.model_bytes(catalog.Shape(1, s.hidden, s.model), torch.bfloat16)
    big = wl.model_bytes(catalog.Shape(4096, s.hidden, s.model), torch.bfloat16)
    assert 0 < small < big < wl.model_bytes(catalog.Shape(4096, s.hidden, s.model), torch.float32)


def test_model_bytes_of_the_norms_are_the_known_formulas() -> None:
    s = catalog.Shape(512, 4096, "llama-3.1-8b")
    t = 512 * 4096 * 2
    assert catalog.get("rms_norm").model_bytes(s, torch.bfloat16) == 2 * t + 4096 * 2
    assert catalog.get("fused_add_rms_norm").model_bytes(s, torch.bfloat16) == 4 * t + 4096 * 2


def test_donated_chain_declares_its_donated_inputs() -> None:
    wl = catalog.get("donated_chain")
    assert wl.build(wl.shapes("test")[0], torch.float32, "cpu").donated == (0, 1)
    assert catalog.get("norm_chain").build(wl.shapes("test")[0], torch.float32, "cpu").donated == ()
