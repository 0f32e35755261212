"""Triton rotary embedding on q and k, in place or out of place.

One program per (token, head). Neox style rotates the two halves of the rotary dims, GPT-J
style interleaved pairs. Inputs and outputs have their own pointers and (token, column) strides,
read at run time, so row-strided or offset views of a fused qkv work and one kernel serves both
forms. Dims past rot_dim pass through: untouched in place, copied out of place (``COPY_TAIL``),
so the out-of-place form always writes all of its output.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotary(pos_ptr, x_ptr, o_ptr, cache_ptr, sx_t, sx_c, so_t, so_c, stride_cache,
            HEAD: tl.constexpr, HALF: tl.constexpr, IS_NEOX: tl.constexpr,
            COPY_TAIL: tl.constexpr, TAIL: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    i = tl.arange(0, HALF)
    cos = tl.load(cache_ptr + pos * stride_cache + i).to(tl.float32)
    sin = tl.load(cache_ptr + pos * stride_cache + HALF + i).to(tl.float32)
    x_base = x_ptr + t * sx_t + h * HEAD * sx_c
    o_base = o_ptr + t * so_t + h * HEAD * so_c
    if IS_NEOX:
        i1 = i
        i2 = i + HALF
    else:
        i1 = 2 * i
        i2 = 2 * i + 1
    x1 = tl.load(x_base + i1 * sx_c).to(tl.float32)
    x2 = tl.load(x_base + i2 * sx_c).to(tl.float32)
    if COPY_TAIL:
        j = 2 * HALF + tl.arange(0, TAIL)
        tail_mask = j < HEAD
        tail = tl.load(x_base + j * sx_c, mask=tail_mask, other=0.0)
        tl.store(o_base + j * so_c, tail, mask=tail_mask)
    tl.store(o_base + i1 * so_c, (x1 * cos - x2 * sin).to(o_ptr.dtype.element_ty))
    tl.store(o_base + i2 * so_c, (x2 * cos + x1 * sin).to(o_ptr.dtype.element_ty))


def rotary_embedding(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, cos_sin_cache: torch.Tensor,
                     head_size: int, is_neox: bool, q_out: torch.Tensor, k_out: torch.Tensor) -> None:
    """Rotate q ([T, H*hs]) into q_out and k ([T, Hkv*hs]) into k_out; an output may be its input."""
    n = positions.numel()
    if n == 0:
        return
    half = cos_sin_cache.shape[-1] // 2
    tail = head_size - 2 * half
    for x, out in ((q, q_out), (k, k_out)):
        copy_tail = tail > 0 and not (out.data_ptr() == x.data_ptr() and out.stride() == x.stride())
        _rotary[(n, x.shape[-1] // head_size)](
            positions, x, out, cos_sin_cache, *x.stride(), *out.stride(), cos_sin_cache.stride(0),
            HEAD=head_size, HALF=half, IS_NEOX=is_neox, COPY_TAIL=copy_tail,
            TAIL=triton.next_power_of_2(max(tail, 1)),
        )
