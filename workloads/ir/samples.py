"""Sample arguments for each IR op at a (tokens, hidden) point: kernel checks and opcheck."""
from __future__ import annotations

from typing import Any, Callable

import torch

HEAD_SIZE = 128
MAX_POS = 4096


def rope_cache(rot_dim: int, max_pos: int = MAX_POS, base: float = 10000.0,
               device: Any = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[max_pos, rot_dim]`` cos|sin table, as serving stacks precompute it."""
    inv = 1.0 / (base ** (torch.arange(0, rot_dim, 2, dtype=torch.float64) / rot_dim))
    ang = torch.outer(torch.arange(max_pos, dtype=torch.float64), inv)
    return torch.cat((ang.cos(), ang.sin()), dim=-1).to(device=device, dtype=dtype)


def _rms(t, h, dtype, device, g):  # noqa: ANN001
    return (torch.randn(t, h, generator=g).to(device, dtype),
            (1 + 0.1 * torch.randn(h, generator=g)).to(device, dtype), 1e-6)


def _fused(t, h, dtype, device, g):  # noqa: ANN001
    return (torch.randn(t, h, generator=g).to(device, dtype), torch.randn(t, h, generator=g).to(device, dtype),
            (1 + 0.1 * torch.randn(h, generator=g)).to(device, dtype), 1e-5)


def _silu(t, h, dtype, device, g):  # noqa: ANN001
    return (torch.randn(t, 2 * h, generator=g).to(device, dtype),)


def _rotary(t, h, dtype, device, g, is_neox: bool = True, rot_dim: int = HEAD_SIZE,  # noqa: ANN001
            heads: int | None = None, kv_heads: int | None = None):
    """q and k are split views of one fused qkv ``[t, h + 2*kv]`` (kv = h/4, GQA-like);
    ``rot_dim < HEAD_SIZE`` rotates only the first dims of each head; ``heads``/``kv_heads``
    override the head counts (then ``h`` is ignored)."""
    heads = heads or max(h // HEAD_SIZE, 1)
    kv = kv_heads or max(heads // 4, 1)
    qkv = torch.randn(t, (heads + 2 * kv) * HEAD_SIZE, generator=g).to(device, dtype)
    q, k, _ = qkv.split([heads * HEAD_SIZE, kv * HEAD_SIZE, kv * HEAD_SIZE], dim=-1)
    pos = torch.randint(0, MAX_POS, (t,), generator=g).to(device)
    return (pos, q, k, rope_cache(rot_dim, device=device), HEAD_SIZE, is_neox)


SAMPLES: dict[str, Callable[..., tuple]] = {
    "rms_norm": _rms,
    "fused_add_rms_norm": _fused,
    "silu_and_mul": _silu,
    "rotary_embedding": _rotary,
}


# Further argument variants each kernel is checked on, besides the defaults.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "rotary_embedding": [
        {"is_neox": False, "rot_dim": HEAD_SIZE // 2},
        # head counts that are not powers of two, different for q and k: masked head tiles
        {"heads": 5, "kv_heads": 3},
        {"is_neox": False, "rot_dim": HEAD_SIZE // 2, "heads": 5, "kv_heads": 3},
    ],
}


def sample_args(op: str, tokens: int, hidden: int, dtype: torch.dtype, device: Any = "cpu",
                seed: int = 0, **kw: Any) -> tuple:
    """Fresh arguments for ``op``."""
    g = torch.Generator().manual_seed(seed)
    return SAMPLES[op](tokens, hidden, dtype, device, g, **kw)


def clone_args(args: tuple) -> tuple:
    """Deep-copy tensor args, keeping the qkv-view structure of rotary's q/k intact."""
    out = []
    bases: dict[int, torch.Tensor] = {}
    for a in args:
        if isinstance(a, torch.Tensor) and a._base is not None:
            base = bases.setdefault(id(a._base), a._base.clone())
            out.append(base.as_strided(a.shape, a.stride(), a.storage_offset()))
        elif isinstance(a, torch.Tensor):
            out.append(a.clone())
        else:
            out.append(a)
    return tuple(out)
