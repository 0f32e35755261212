"""Tiny random models of three architectures vLLM serves, made here from transformers configs.

No hub, no download: each model is a config plus weights drawn from a fixed seed, written as a
local model directory that `vllm.LLM(model=<dir>)` loads. The sizes suit vLLM's CPU attention
backend (head size 32, at least the 32 it needs) and give two decoder layers, so vLLM's piecewise
compile makes two decoder pieces between the attention splits. Qwen3 adds q/k norms, which vLLM
applies to per-head views of the fused qkv projection; Mistral is Llama's layout under another
architecture name and model class.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: bumped when a config or the weight recipe changes, so a stale directory is rebuilt
RECIPE_VERSION = 1


@dataclass(frozen=True)
class TinyModel:
    """One tiny model: its architecture, its transformers config and the seed of its weights."""

    name: str
    architecture: str      # the `architectures` entry vLLM dispatches on
    config_class: str      # transformers config class
    model_class: str       # transformers model class that draws the weights
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    #: set only where the config class has the key (MoE sizes: a dense config must not get them)
    optional: dict[str, Any] = field(default_factory=dict)

    def config(self, dtype: str, present: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The transformers config keyword arguments (pure: no transformers import); `present`
        names the keys the config class has, which decides the `optional` ones."""
        base = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=32, vocab_size=512, max_position_embeddings=256,
                    rms_norm_eps=1e-6, tie_word_embeddings=False, architectures=[self.architecture],
                    # larger than the usual 0.02, so greedy picks are far from ties
                    initializer_range=0.2, dtype=dtype)
        base.update({k: v for k, v in self.optional.items() if k in present})
        base.update(self.overrides)
        return base


MODELS: dict[str, TinyModel] = {m.name: m for m in (
    TinyModel("llama", "LlamaForCausalLM", "LlamaConfig", "LlamaForCausalLM", seed=1),
    TinyModel("qwen3", "Qwen3ForCausalLM", "Qwen3Config", "Qwen3ForCausalLM", seed=2),
    TinyModel("mistral", "MistralForCausalLM", "MistralConfig", "MistralForCausalLM", seed=3,
              overrides={"sliding_window": None}),
)}


#: a tiny model above this many parameters is refused before any weight is drawn
PARAM_CAP = 50_000_000


class ModelTooLarge(ValueError):
    """A config that ignores the tiny sizes (some multimodal configs do) would build a full model."""


def looks_like_architecture(name: str) -> bool:
    """A vLLM architecture name (`LlamaForCausalLM`), which the zoo makes a tiny model of."""
    return name.isidentifier() and name[:1].isupper()


def count_params(model_class: Any, config: Any) -> int:
    """Parameters of `model_class(config)` built on the meta device: no memory is allocated."""
    import torch

    with torch.device("meta"):
        net = model_class(config)
    return sum(p.numel() for p in net.parameters())


def check_size(model_class: Any, config: Any, cap: int = PARAM_CAP) -> int:
    """The parameter count, or `ModelTooLarge` above `cap`."""
    n = count_params(model_class, config)
    if n > cap:
        raise ModelTooLarge(f"{n} parameters on the meta device, above the cap of {cap}")
    return n


def model_dir(root: Path, model: TinyModel, dtype: str) -> Path:
    """Where `make_model` writes `model` in `dtype` under `root`."""
    return Path(root) / f"{model.name}-{dtype}-r{RECIPE_VERSION}-s{model.seed}"


def make_model(root: Path, model: TinyModel, dtype: str) -> Path:
    """Write `model`'s directory (config, safetensors weights) once; return it.

    Weights are drawn in float32 from `model.seed` and cast, so the bf16 model is the fp32 one
    rounded. The parameters are counted on the meta device first (`check_size`). A directory holding a complete model (its `config.json` written last) is reused.
    """
    import torch
    import transformers

    out = model_dir(root, model, dtype)
    if (out / "config.json").exists():
        return out
    model_class = getattr(transformers, model.model_class)
    # a composite config (Llama 4, Qwen3.5: text plus vision) is not what its causal LM takes:
    # the model class names its own (text) config class
    config_class = getattr(model_class, "config_class", None) or getattr(transformers, model.config_class)
    config = config_class(**model.config(dtype, frozenset(config_class().to_dict())))
    check_size(model_class, config)
    torch.manual_seed(model.seed)
    net = model_class(config).to(getattr(torch, dtype))
    tmp = out.with_name(out.name + ".tmp")
    net.save_pretrained(tmp, safe_serialization=True)
    cfg = json.loads((tmp / "config.json").read_text())
    (tmp / "config.json").unlink()
    tmp.rename(out)
    (out / "config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True))
    return out
