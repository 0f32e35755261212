"""Triton rotary embedding, in place on q and k (row-strided views of a fused qkv are fine).

One program per (token, head). Neox style rotates the two halves of the rotary dims,
GPT-J style interleaved pairs; dims past rot_dim pass through untouched.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotary_inplace(pos_ptr, x_ptr, cache_ptr, stride_xt, stride_cache,
                    HEAD: tl.constexpr, HALF: tl.constexpr, IS_NEOX: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    i = tl.arange(0, HALF)
    cos = tl.load(cache_ptr + pos * stride_cache + i).to(tl.float32)
    sin = tl.load(cache_ptr + pos * stride_cache + HALF + i).to(tl.float32)
    base = x_ptr + t * stride_xt + h * HEAD
    if IS_NEOX:
        i1 = i
        i2 = i + HALF
    else:
        i1 = 2 * i
        i2 = 2 * i + 1
    x1 = tl.load(base + i1).to(tl.float32)
    x2 = tl.load(base + i2).to(tl.float32)
    tl.store(base + i1, (x1 * cos - x2 * sin).to(x_ptr.dtype.element_ty))
    tl.store(base + i2, (x2 * cos + x1 * sin).to(x_ptr.dtype.element_ty))


def rotary_embedding_(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                      cos_sin_cache: torch.Tensor, head_size: int, is_neox: bool) -> None:
    """Rotate q ([T, H*hs]) and k ([T, Hkv*hs]) in place."""
    n = positions.numel()
    if n == 0:
        return
    half = cos_sin_cache.shape[-1] // 2
    for x in (q, k):
        _rotary_inplace[(n, x.shape[-1] // head_size)](
            positions, x, cos_sin_cache, x.stride(0), cos_sin_cache.stride(0),
            HEAD=head_size, HALF=half, IS_NEOX=is_neox,
        )
