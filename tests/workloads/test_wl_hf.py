"""The transformers adapter: Llama, Qwen2 and Mistral models and layers through our IR ops,
checked against the unmodified transformers modules (float64), in eager, compiled and grad mode."""
from __future__ import annotations

import copy

import pytest
import torch

from harness.run.compile import GeneratedCode, capture_code
from workloads import catalog, hf, pipeline
from workloads.dims import ModelDims
from workloads.models import _hf

transformers = pytest.importorskip("transformers")

FAMILIES = list(hf.FAMILIES)
TINY = ModelDims("test-tiny", 64, 4, 2, 16, 128, 1e-6)


def _model(family: str, layers: int = 2) -> torch.nn.Module:
    return _hf.make_model(family, TINY, layers, torch.float32, "cpu", seed=3)


def _causal_lm(family: str) -> torch.nn.Module:
    """A *ForCausalLM around the same tiny base model (lm_head included)."""
    cls = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}[family]
    base = _model(family)
    lm = getattr(transformers, cls)(base.config)
    lm.model = base
    return lm.eval().requires_grad_(False)


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _views_reach_kernels(generated: GeneratedCode) -> int:
    """The view check of the generated code passed and checked something; returns the copies."""
    reports = generated.view_reports()
    assert sum(r.checked for r in reports) > 0
    assert not any(r.unverified for r in reports) and generated.view_errors() == ()
    return generated.copies()


@pytest.mark.parametrize("family", FAMILIES)
def test_adapted_causal_lm_matches_transformers_in_float64(family: str) -> None:
    lm = _causal_lm(family)
    ids = torch.randint(0, _hf.VOCAB, (1, 11), generator=torch.Generator().manual_seed(0))
    want = copy.deepcopy(lm).double()(ids).logits[0]
    got = hf.adapt(lm)(ids)
    assert got.shape == want.shape and _err(got, want) < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_adapted_layer_sums_to_the_transformers_layer(family: str) -> None:
    model = _model(family, layers=1)
    layer = hf.adapt(model.layers[0], rotary=model.rotary_emb)
    x, r = torch.randn(1, 9, TINY.hidden), torch.randn(1, 9, TINY.hidden)
    pos = torch.arange(9)[None]
    h, res = layer(pos, x, r)
    want = model.layers[0](x + r, position_embeddings=model.rotary_emb(x, pos), attention_mask=None)
    assert _err((h + res).view(want.shape), want) < 1e-4


def test_mistral_sliding_window_masks_like_transformers() -> None:
    model = _model("mistral")
    model.config.sliding_window = 4
    for layer in model.layers:
        layer.self_attn.config.sliding_window = 4
    x = torch.randn(12, TINY.hidden)
    want = model(inputs_embeds=x[None]).last_hidden_state[0]
    assert _err(hf.adapt(model)(inputs_embeds=x), want) < 1e-4


def test_adapter_shares_the_models_modules_and_rejects_other_families() -> None:
    model = _model("llama")
    adapted = hf.adapt(model)
    assert adapted.layers[0].layer is model.layers[0] and adapted.norm is model.norm
    assert {id(p) for p in model.parameters()} >= {id(p) for p in adapted.parameters()}
    model.config.model_type = "gpt2"
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        hf.adapt(model)
    with pytest.raises(TypeError, match="cannot adapt Linear"):
        hf.adapt(torch.nn.Linear(2, 2))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_sound_model_matches_transformers_and_keeps_embeddings(family: str) -> None:
    model = _model(family)
    x = torch.randn(10, TINY.hidden)
    want = copy.deepcopy(model).double()(inputs_embeds=x[None].double()).last_hidden_state[0]
    compiled = pipeline.compile_fn(hf.adapt(model), policy="sound")
    kept = x.clone()
    with capture_code() as generated:
        got = compiled(inputs_embeds=x)
    assert _err(got, want) < 1e-4 and torch.equal(x, kept)
    rep = compiled.reports[-1]
    # the 2 clones of the kept inputs_embeds stay out of elimination and are folded
    assert (rep.clones_before, rep.clones_after, len(rep.folded)) == (13, 0, 2)
    assert _views_reach_kernels(generated) == 0  # read from the generated code: no copy at all


@pytest.mark.slow
def test_input_ids_model_donates_every_activation_under_inference_mode() -> None:
    """From token ids the embeddings are the program's own: every clone goes but the first
    norm's (its input is read again as the residual)."""
    model = _model("qwen2")
    ids = torch.randint(0, _hf.VOCAB, (1, 7))
    compiled = pipeline.compile_fn(hf.adapt(model), policy="sound")
    with torch.inference_mode():
        got = compiled(ids)
    want = copy.deepcopy(model).double()(ids).last_hidden_state[0]
    assert _err(got, want) < 1e-4
    rep = compiled.reports[-1]  # the first norm's clone (its input is the residual) is folded
    assert (rep.clones_before, rep.clones_after, len(rep.folded)) == (13, 0, 1)


@pytest.mark.slow
def test_layer_inputs_donated_through_their_views_lose_every_clone() -> None:
    model = _model("llama", layers=1)
    layer = hf.adapt(model.layers[0], rotary=model.rotary_emb)

    def step(pos, x, r):  # noqa: ANN001, ANN202
        return layer(pos, x, r, donate=True)

    compiled = pipeline.compile_fn(step, policy="sound")
    x, r, pos = torch.randn(1, 8, TINY.hidden), torch.randn(1, 8, TINY.hidden), torch.arange(8)[None]
    want = layer(pos, x.clone(), r.clone())
    with torch.inference_mode(), capture_code() as generated:
        got = compiled(pos, x, r)
    assert _views_reach_kernels(generated) == 0  # the kernels write the caller's views in place
    assert compiled.donated[-1] and (compiled.reports[-1].clones_before, compiled.reports[-1].clones_after) == (6, 0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_trainable_model_compiles_and_gives_transformers_gradients() -> None:
    """Grad mode: parameters require grad, the adapter picks the functional (differentiable)
    overloads, the backward matches the transformers module's."""
    model = _model("llama").requires_grad_(True)
    native = copy.deepcopy(model)
    x = torch.randn(6, TINY.hidden)
    compiled = pipeline.compile_fn(hf.adapt(model), policy="sound")
    got = compiled(inputs_embeds=x)
    want = native(inputs_embeds=x[None]).last_hidden_state[0]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    got.pow(2).sum().backward()
    want.pow(2).sum().backward()
    for (name, p), q in zip(model.named_parameters(), native.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-3, msg=name)


def test_model_workloads_skip_with_a_reason_without_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf.importlib.util, "find_spec", lambda name: None)
    for name in ("hf_llama", "hf_qwen2", "hf_mistral", "hf_llama_layer_views"):
        wl = catalog.get(name)
        assert "transformers is not installed" in wl.unavailable()
        with pytest.raises(RuntimeError, match="transformers is not installed"):
            wl.build(wl.shapes("test")[0], torch.float32, "cpu")



@pytest.mark.slow
def test_one_report_per_compiled_graph_and_recompiles_append() -> None:
    """Dynamo restarts this trace once (the pre-grad pass sees two graphs for one compile):
    only the graph that was compiled leaves an entry. A new token count (1: specialised)
    compiles again and appends."""
    compiled = pipeline.compile_fn(hf.adapt(_model("llama")), policy="sound")
    with torch.inference_mode():
        compiled(torch.randint(0, _hf.VOCAB, (1, 9)))
        assert len(compiled.reports) == len(compiled.donated) == len(compiled.lowering_reports) == 1
        compiled(torch.randint(0, _hf.VOCAB, (1, 12)))   # same graph (dynamic tokens)
        assert len(compiled.reports) == 1
        compiled(torch.randint(0, _hf.VOCAB, (1, 1)))
    assert len(compiled.reports) == len(compiled.donated) == 2
    report = compiled.reports[0]
    assert report.by_origin() == {"lowering": (13, 0)} and len(report.folded) == 1
    assert all(d.bytes and d.bytes_formula for d in report.removed + report.folded + report.kept)  # symbolic tokens


@pytest.mark.slow
def test_grad_mode_reports_forward_and_backward_graphs_apart(caplog: pytest.LogCaptureFixture) -> None:
    compiled = pipeline.compile_fn(hf.adapt(_model("llama").requires_grad_(True)), policy="sound")
    compiled(inputs_embeds=torch.randn(5, TINY.hidden)).sum().backward()
    assert len(compiled.reports) == 2
    assert "placeholder count changed" not in caplog.text
