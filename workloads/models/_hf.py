"""Shared by the transformers workloads: build a model of one family from ``dims.py`` dims with
random weights (no download), and the two ways the catalog runs it.

``HFStack``: N decoder layers + final norm of a base model, from ``inputs_embeds`` (kept by the
caller), through ``workloads.hf.adapt``; its reference is the unmodified transformers model.
``HFLayerViews``: one decoder layer whose hidden/residual arrive in transformers' ``[1, T, H]``
layout and are flattened with ``view(-1, H)`` before the functional norm: the reference policy
drops the clones of those views and overwrites the caller's tensors (the view hole).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workloads import hf
from workloads.catalog import Built, Shape, Workload
from workloads.dims import ModelDims
from workloads.models import _common as C
from workloads.models.llama_block import WORKLOAD as LLAMA_BLOCK

LAYERS = 2
MAX_POS = 4096
VOCAB = 64
CONFIGS = {"llama": "LlamaConfig", "qwen2": "Qwen2Config", "mistral": "MistralConfig"}
MODELS = {"llama": "LlamaModel", "qwen2": "Qwen2Model", "mistral": "MistralModel"}


def make_model(family: str, d: ModelDims, layers: int, dtype: torch.dtype, device: Any,
               seed: int = 0) -> nn.Module:
    """A transformers base model of ``family`` with ``d``'s dims and seeded random weights,
    in eval mode with frozen parameters (inference, as served)."""
    import transformers

    config = getattr(transformers, CONFIGS[family])(
        hidden_size=d.hidden, intermediate_size=d.intermediate, num_attention_heads=d.heads,
        num_key_value_heads=d.kv_heads, head_dim=d.head_dim, rms_norm_eps=d.eps,
        num_hidden_layers=layers, vocab_size=VOCAB, max_position_embeddings=MAX_POS,
        attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = getattr(transformers, MODELS[family])(config)
    with torch.no_grad():  # unit-ish norm weights, not ones: a norm that skips its weight shows
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                p.normal_(1.0, 0.1)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


class _Twin(nn.Module):
    """The transformers model in any dtype: float64 for the reference, made on first use."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.copies: dict[torch.dtype, nn.Module] = {}

    def at(self, dtype: torch.dtype) -> nn.Module:
        if dtype == next(self.model.parameters()).dtype:
            return self.model
        if dtype not in self.copies:
            self.copies[dtype] = copy.deepcopy(self.model).to(dtype)
        return self.copies[dtype]


class _StackCore(_Twin):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.adapted = hf.adapt(model)

    def forward_ir(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.adapted(inputs_embeds=hidden, positions=positions)

    def forward_native(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        out = self.at(hidden.dtype)(inputs_embeds=hidden[None], position_ids=positions[None])
        return out.last_hidden_state[0]


class _LayerCore(_Twin):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.adapted = hf.adapt(model.layers[0], rotary=model.rotary_emb)

    def forward_ir(self, hidden: torch.Tensor, residual: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h, r = self.adapted(positions, hidden, residual)   # functional overloads: nothing donated
        return (h + r).view(hidden.shape)

    def forward_native(self, hidden: torch.Tensor, residual: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        model = self.at(hidden.dtype)
        x = hidden + residual
        return model.layers[0](x, position_embeddings=model.rotary_emb(x, positions), attention_mask=None)


@dataclass
class HFWorkload(Workload):
    """Common parts: the family, availability, building the model."""

    family: str = "llama"

    def unavailable(self) -> str | None:
        return hf.unavailable()

    def _model(self, shape: Shape, dtype: torch.dtype, device: Any, layers: int) -> nn.Module:
        reason = self.unavailable()
        if reason is not None:
            raise RuntimeError(f"{self.name}: {reason}")
        return make_model(self.family, shape.dims, layers, dtype, device, seed=shape.hidden)


@dataclass
class HFStack(HFWorkload):
    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        core = _StackCore(self._model(shape, dtype, device, LAYERS))
        g = C.gen(shape)
        hidden = C.randn((shape.num_tokens, shape.hidden), dtype, device, g)
        positions = torch.arange(shape.num_tokens, device=device)
        fn, native, _ = C.variants(core)
        return Built(fn, native, None, (hidden, positions))

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        """Each layer moves what one ``llama_block`` moves (same kernels, same weights)."""
        return LAYERS * LLAMA_BLOCK.model_bytes(shape, dtype)


@dataclass
class HFLayerViews(HFWorkload):
    def build(self, shape: Shape, dtype: torch.dtype, device: Any) -> Built:
        core = _LayerCore(self._model(shape, dtype, device, 1))
        g = C.gen(shape)
        hidden = C.randn((1, shape.num_tokens, shape.hidden), dtype, device, g)
        residual = C.randn((1, shape.num_tokens, shape.hidden), dtype, device, g)
        positions = torch.arange(shape.num_tokens, device=device)[None]
        fn, native, _ = C.variants(core)
        return Built(fn, native, None, (hidden, residual, positions), dynamic_dim=1)

    def model_bytes(self, shape: Shape, dtype: torch.dtype) -> int:
        return LLAMA_BLOCK.model_bytes(shape, dtype)


def stack_workload(family: str, model_class: str, nightly_model: str) -> HFStack:
    """The catalog entry for one family's 2-layer stack.

    Clones: the first norm's ``rms_norm`` (1), each layer's rotary (2) and fused adds (2 per
    add: 3 adds), 13 in all. Elimination keeps two, both of the caller's ``inputs_embeds`` (kept,
    not donated): the first norm's (the residual reads it afterwards) and the first fused add's
    residual clone (the kernel would write it); cleanpass folds both into out-of-place kernels.
    """
    return HFStack(
        name=f"hf_{family}",
        description=f"transformers {model_class} ({LAYERS} layers, random weights) through workloads.hf.adapt",
        suite_shapes=stack_shapes(nightly_model),
        suite_dtypes={"nightly": [torch.bfloat16]},
        expected_clones={"lowered": (13, 13), "vllm": (13, 2), "cleanpass": (13, 0)},
        tolerance_scale=8.0,
        family=family,
    )


def stack_shapes(nightly_model: str) -> dict[str, list[Shape]]:
    """Tiny dims on the CPU suites (decode and prefill token counts); real dims on nightly.

    Not in ``smoke``: CI gates that suite on 2 cores, where these graphs would add minutes of
    compile; ``tests/workloads/test_wl_hf.py`` runs them (tiny configs) on every CI run instead.
    """
    return {
        "test": C.TEST,
        "smoke": [],
        "default": C.grid(["mini-gqa"], [1, 32, 128]),
        "nightly": C.grid([nightly_model], [1, 512, 4096]),
    }
