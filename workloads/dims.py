"""Real model dimensions (public configs), one shared table; plus two CPU-sized stand-ins."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelDims:
    """One model class. ``heads == 0`` marks a model used for its norms only."""

    name: str
    hidden: int
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 128
    intermediate: int = 0
    eps: float = 1e-5
    q_size: int = field(init=False)
    kv_size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "q_size", self.heads * self.head_dim)
        object.__setattr__(self, "kv_size", self.kv_heads * self.head_dim)

    @property
    def qkv_size(self) -> int:
        return self.q_size + 2 * self.kv_size


MODELS: dict[str, ModelDims] = {m.name: m for m in (
    ModelDims("llama-3.1-8b", 4096, 32, 8, 128, 14336, 1e-5),
    ModelDims("mistral-7b", 4096, 32, 8, 128, 14336, 1e-5),
    ModelDims("qwen2.5-32b", 5120, 40, 8, 128, 27648, 1e-6),
    ModelDims("deepseek-v3", 7168, eps=1e-6),
    ModelDims("llama-3.1-70b", 8192, 64, 8, 128, 28672, 1e-5),
    ModelDims("llama-3.2-1b", 2048, 32, 8, 64, 8192, 1e-5),
    # CPU stand-ins with the real head size (128) and GQA ratio, for suites that run on 2 cores.
    ModelDims("mini-gqa", 1024, 8, 2, 128, 2816, 1e-5),
    ModelDims("tiny-gqa", 512, 4, 2, 128, 1024, 1e-6),
)}


def dims(model: str) -> ModelDims:
    """Look a model up by name."""
    return MODELS[model]


def model_for_hidden(hidden: int) -> ModelDims:
    """The first model with this hidden size (for shapes that carry no model name)."""
    for m in MODELS.values():
        if m.hidden == hidden:
            return m
    raise KeyError(f"no model with hidden={hidden}")
