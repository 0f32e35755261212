"""Run transformers Llama, Qwen2 and Mistral models through our IR ops, the way vLLM's model
code calls them.

    import workloads.hf
    adapted = workloads.hf.adapt(model)      # LlamaForCausalLM, Qwen2Model, MistralDecoderLayer, ...
    with torch.inference_mode():
        logits = pipeline.compile_fn(adapted, policy="sound")(input_ids, positions)

``adapt`` wraps the model's own submodules (projections, norms' weights, embedding, lm_head:
shared, not copied) in a forward of ours: tokens flattened to ``[T, hidden]``, the residual
stream carried beside the hidden states, the first norm ``rms_norm`` and every later residual
add + norm one ``fused_add_rms_norm``, rotary on q and k, SiLU-mul on the gate/up projections.
Activations the model no longer needs go through ``maybe_inplace`` (donated) unless autograd
records them (grad mode on and parameters that require grad): then the functional overloads,
which are differentiable. The caller's own tensors (``inputs_embeds``, a layer's hidden/residual inputs)
are donated only when asked.
One sequence per call (no KV cache, no padding): positions default to ``0..T-1``.
Outputs are flat: ``[T, vocab]`` logits, ``[T, hidden]`` hidden states, or a layer's
``(hidden, residual)`` whose sum is the transformers layer's output.

``transformers`` is optional: ``unavailable()`` says why the adapter cannot run here.
"""
from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ir = torch.ops.cleanpass_ir

FAMILIES = ("llama", "qwen2", "mistral")
SILU = ("silu", "swish")
STATIC_ROPE = ("default", "linear", "llama3", "yarn")  # inv_freq fixed at init


def unavailable() -> str | None:
    """Why the adapter cannot run here (None when it can)."""
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed (pip install -e .[test])"
    return None


def _family(config: Any) -> str:
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        raise ValueError(f"workloads.hf adapts {FAMILIES} models, not model_type={family!r}")
    return family


def rotary_cache(config: Any, inv_freq: torch.Tensor | None = None, scaling: float = 1.0) -> torch.Tensor:
    """``[max_positions, head_dim]`` cos|sin table, from the model's ``inv_freq`` when given."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = dict(getattr(config, "rope_parameters", None) or {})
    if rope.get("rope_type", "default") not in STATIC_ROPE:
        raise ValueError(f"rope_type {rope.get('rope_type')!r} changes with the sequence; not supported")
    if inv_freq is None:
        if rope.get("rope_type", "default") != "default":
            raise ValueError("pass the model's rotary module for a scaled rope (adapt(layer, rotary=...))")
        theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(config.max_position_embeddings, dtype=torch.float64), inv_freq.double())
    return torch.cat((angles.cos(), angles.sin()), dim=-1) * scaling


def _recorded(module: nn.Module, *activations: torch.Tensor) -> bool:
    """True when autograd records this module's work (its backward may need the activations)."""
    return torch.is_grad_enabled() and (any(a.requires_grad for a in activations)
                                        or any(p.requires_grad for p in module.parameters()))


def _giving_up(op: Any, recorded: bool, donate: bool = True) -> Any:
    """``op.maybe_inplace`` when the activations may be given up, else the functional overload."""
    return op.maybe_inplace if donate and not recorded else op.default


class DecoderLayer(nn.Module):
    """One transformers decoder layer (its own submodules) with a vLLM-style forward."""

    def __init__(self, layer: nn.Module, config: Any, cos_sin: torch.Tensor) -> None:
        super().__init__()
        _family(config)
        self.layer = layer
        attn = layer.self_attn
        self.head_dim = attn.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.hidden = config.hidden_size
        self.scaling = attn.scaling
        # Qwen2 sets the window per layer on the attention; Mistral on the config; Llama has none
        self.window = getattr(attn, "sliding_window", getattr(config, "sliding_window", None))
        self.silu_mlp = getattr(config, "hidden_act", None) in SILU
        self.register_buffer("cos_sin", cos_sin.to(layer.input_layernorm.weight), persistent=False)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor, residual: torch.Tensor | None = None,
                donate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, residual)`` after this layer; ``donate`` gives up the given hidden/residual."""
        layer, hidden = self.layer, hidden.view(-1, self.hidden)
        grad = _recorded(self, hidden, *(() if residual is None else (residual,)))
        fused_in = _giving_up(ir.fused_add_rms_norm, grad, donate)
        norm = layer.input_layernorm
        if residual is None:
            residual = hidden
            hidden = ir.rms_norm.default(hidden, norm.weight, norm.variance_epsilon)
            fused_post = fused_in  # the residual is still the caller's tensor
        else:
            hidden, residual = fused_in(hidden, residual.view(-1, self.hidden), norm.weight, norm.variance_epsilon)
            fused_post = _giving_up(ir.fused_add_rms_norm, grad)
        hidden = self._attention(positions.view(-1), hidden, grad)
        norm = layer.post_attention_layernorm
        hidden, residual = fused_post(hidden, residual, norm.weight, norm.variance_epsilon)
        return self._mlp(hidden, grad), residual

    def _attention(self, positions: torch.Tensor, hidden: torch.Tensor, grad: bool) -> torch.Tensor:
        attn = self.layer.self_attn
        q, k, v = attn.q_proj(hidden), attn.k_proj(hidden), attn.v_proj(hidden)
        rotary = _giving_up(ir.rotary_embedding, grad)
        q, k = rotary(positions, q, k, self.cos_sin.to(q.dtype), self.head_dim, True)
        t = hidden.shape[0]
        heads = [x.view(t, n, self.head_dim).transpose(0, 1).unsqueeze(0)
                 for x, n in ((q, self.heads), (k, self.kv_heads), (v, self.kv_heads))]
        out = F.scaled_dot_product_attention(*heads, attn_mask=self._window_mask(t, hidden.device),
                                             is_causal=self.window is None, scale=self.scaling,
                                             enable_gqa=self.heads != self.kv_heads)
        return attn.o_proj(out[0].transpose(0, 1).reshape(t, self.heads * self.head_dim))

    def _window_mask(self, t: int, device: torch.device) -> torch.Tensor | None:
        """Causal and at most ``window`` tokens back (transformers' sliding-window rule)."""
        if self.window is None:
            return None
        i = torch.arange(t, device=device)
        back = i[:, None] - i[None, :]
        return (back >= 0) & (back < self.window)

    def _mlp(self, hidden: torch.Tensor, grad: bool) -> torch.Tensor:
        mlp = self.layer.mlp
        if not self.silu_mlp:
            return mlp(hidden)
        gate_up = torch.cat((mlp.gate_proj(hidden), mlp.up_proj(hidden)), dim=-1)
        return mlp.down_proj(_giving_up(ir.silu_and_mul, grad)(gate_up))


class Model(nn.Module):
    """A transformers base model or causal LM: embedding, adapted layers, final norm, lm_head."""

    def __init__(self, model: nn.Module, donate_inputs: bool = False) -> None:
        super().__init__()
        base = model.model if hasattr(model, "lm_head") else model
        config = base.config
        _family(config)
        rotary = base.rotary_emb
        cos_sin = rotary_cache(config, rotary.inv_freq, rotary.attention_scaling)
        self.embed_tokens = base.embed_tokens
        self.layers = nn.ModuleList(DecoderLayer(layer, config, cos_sin) for layer in base.layers)
        self.norm = base.norm
        self.lm_head = getattr(model, "lm_head", None)
        self.donate_inputs = donate_inputs

    def forward(self, input_ids: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (causal LM) or final hidden states, ``[T, ...]`` for the T tokens given."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        # embeddings computed here are ours to overwrite; the caller's inputs_embeds are not
        donate = inputs_embeds is None or self.donate_inputs
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        hidden = hidden.reshape(-1, hidden.shape[-1])
        if positions is None:
            positions = torch.arange(hidden.shape[0], device=hidden.device)
        residual = None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual, donate=donate)
            donate = True
        hidden, _ = _giving_up(ir.fused_add_rms_norm, _recorded(self, hidden, residual))(hidden, residual, self.norm.weight,
                                                        self.norm.variance_epsilon)
        return self.lm_head(hidden) if self.lm_head is not None else hidden


def adapt(module: nn.Module, rotary: nn.Module | None = None, donate_inputs: bool = False) -> nn.Module:
    """The vLLM-style twin of a transformers Llama/Qwen2/Mistral model or decoder layer.

    A model (``*Model`` or ``*ForCausalLM``) becomes ``Model``: ``forward(input_ids, positions)``
    or ``forward(inputs_embeds=..., positions=...)``. A decoder layer becomes ``DecoderLayer``:
    ``forward(positions, hidden, residual=None, donate=False)``; pass the model's ``rotary_emb``
    for a scaled rope. ``donate_inputs``: the model's ``inputs_embeds`` may be overwritten.
    """
    if hasattr(module, "layers") or hasattr(module, "lm_head"):
        return Model(module, donate_inputs)
    if hasattr(module, "self_attn") and hasattr(module, "mlp"):
        config = module.self_attn.config
        inv_freq = rotary.inv_freq if rotary is not None else None
        scaling = rotary.attention_scaling if rotary is not None else 1.0
        return DecoderLayer(module, config, rotary_cache(config, inv_freq, scaling))
    raise TypeError(f"cannot adapt {type(module).__name__}: expected a transformers model or decoder layer")

