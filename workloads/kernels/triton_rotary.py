"""Triton rotary embedding on q and k, in place or out of place, in one launch.

One program per token rotates every head of q and of k. cos/sin for the token's position are
read once and broadcast over heads; each head block is a 2-D tile [heads, HALF] whose rows lie
at ``head * head_size`` along the row, so a warp reads and writes contiguous runs of the row
(GPT-J pairs are read as one [heads, HALF, 2] tile and split in registers). Head counts need not
be powers of two and q and k may have different ones (masked tiles); they are compile-time
constants, like the head size (one model, one compile; Triton 3.6's interpreter also cannot loop
to a bound passed at run time). Inputs and outputs have their own pointers and (token, column)
strides, read at run time, so row-strided or offset views of a fused qkv work and one kernel
serves both forms. Dims past rot_dim pass through: untouched in place, copied out of place
(``COPY_TAIL``), so the out-of-place form always writes all of its output.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotate_heads(x_row, o_row, sx_c, so_c, cos, sin, N_HEADS: tl.constexpr,
                  HEAD: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr,
                  IS_NEOX: tl.constexpr, COPY_TAIL: tl.constexpr, TAIL: tl.constexpr):
    """Rotate the ``N_HEADS`` heads of one token's row, ``BLOCK_H`` heads per tile.

    Neox: out[:HALF] = x1*cos - x2*sin, out[HALF:2*HALF] = x2*cos + x1*sin with x1, x2 the two
    halves of the rotary dims; GPT-J: the same on the interleaved pairs (x[2i], x[2i+1]).
    """
    i = tl.arange(0, HALF)
    for h0 in range(0, N_HEADS, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        hmask = (h < N_HEADS)[:, None]
        col = (h * HEAD)[:, None]
        if IS_NEOX:
            x1 = tl.load(x_row + (col + i[None, :]) * sx_c, mask=hmask, other=0.0).to(tl.float32)
            x2 = tl.load(x_row + (col + HALF + i[None, :]) * sx_c, mask=hmask, other=0.0).to(tl.float32)
            o1 = x1 * cos[None, :] - x2 * sin[None, :]
            o2 = x2 * cos[None, :] + x1 * sin[None, :]
            tl.store(o_row + (col + i[None, :]) * so_c, o1.to(o_row.dtype.element_ty), mask=hmask)
            tl.store(o_row + (col + HALF + i[None, :]) * so_c, o2.to(o_row.dtype.element_ty), mask=hmask)
        else:
            pair = col[:, :, None] + 2 * i[None, :, None] + tl.arange(0, 2)[None, None, :]
            pmask = hmask[:, :, None]
            x = tl.load(x_row + pair * sx_c, mask=pmask, other=0.0).to(tl.float32)
            x1, x2 = tl.split(x)
            o1 = x1 * cos[None, :] - x2 * sin[None, :]
            o2 = x2 * cos[None, :] + x1 * sin[None, :]
            tl.store(o_row + pair * so_c, tl.join(o1, o2).to(o_row.dtype.element_ty), mask=pmask)
        if COPY_TAIL:
            j = 2 * HALF + tl.arange(0, TAIL)
            tmask = hmask & (j < HEAD)[None, :]
            tail = tl.load(x_row + (col + j[None, :]) * sx_c, mask=tmask, other=0.0)
            tl.store(o_row + (col + j[None, :]) * so_c, tail, mask=tmask)


@triton.jit
def _rotary(pos_ptr, cache_ptr, stride_cache,
            q_ptr, sq_t, sq_c, qo_ptr, sqo_t, sqo_c,
            k_ptr, sk_t, sk_c, ko_ptr, sko_t, sko_c,
            N_Q_HEADS: tl.constexpr, N_K_HEADS: tl.constexpr,
            HEAD: tl.constexpr, HALF: tl.constexpr, IS_NEOX: tl.constexpr,
            BLOCK_HQ: tl.constexpr, COPY_TAIL_Q: tl.constexpr,
            BLOCK_HK: tl.constexpr, COPY_TAIL_K: tl.constexpr,
            TAIL: tl.constexpr):
    """Token t: cos = cache[pos[t], :HALF], sin = cache[pos[t], HALF:2*HALF] (fp32), then q[t]
    and k[t] ([heads * HEAD] each, column stride s*_c) rotated into qo[t] and ko[t]."""
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    i = tl.arange(0, HALF)
    cos = tl.load(cache_ptr + pos * stride_cache + i).to(tl.float32)
    sin = tl.load(cache_ptr + pos * stride_cache + HALF + i).to(tl.float32)
    _rotate_heads(q_ptr + t * sq_t, qo_ptr + t * sqo_t, sq_c, sqo_c, cos, sin, N_Q_HEADS,
                  HEAD, HALF, BLOCK_HQ, IS_NEOX, COPY_TAIL_Q, TAIL)
    _rotate_heads(k_ptr + t * sk_t, ko_ptr + t * sko_t, sk_c, sko_c, cos, sin, N_K_HEADS,
                  HEAD, HALF, BLOCK_HK, IS_NEOX, COPY_TAIL_K, TAIL)


def rotary_embedding(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, cos_sin_cache: torch.Tensor,
                     head_size: int, is_neox: bool, q_out: torch.Tensor, k_out: torch.Tensor) -> None:
    """Rotate q ([T, H*hs]) into q_out and k ([T, Hkv*hs]) into k_out; an output may be its input."""
    n = positions.numel()
    if n == 0:
        return
    half = cos_sin_cache.shape[-1] // 2
    tail = head_size - 2 * half
    hq, hk = q.shape[-1] // head_size, k.shape[-1] // head_size
    max_block = max(1, 2048 // half)  # heads per tile: at most 2048 elements of x1, bounding registers
    copy_tail_q, copy_tail_k = (tail > 0 and not (o.data_ptr() == x.data_ptr() and o.stride() == x.stride())
                                for x, o in ((q, q_out), (k, k_out)))
    _rotary[(n,)](
        positions, cos_sin_cache, cos_sin_cache.stride(0),
        q, *q.stride(), q_out, *q_out.stride(),
        k, *k.stride(), k_out, *k_out.stride(),
        N_Q_HEADS=hq, N_K_HEADS=hk, HEAD=head_size, HALF=half, IS_NEOX=is_neox,
        BLOCK_HQ=min(triton.next_power_of_2(hq), max_block), COPY_TAIL_Q=copy_tail_q,
        BLOCK_HK=min(triton.next_power_of_2(hk), max_block), COPY_TAIL_K=copy_tail_k,
        TAIL=triton.next_power_of_2(max(tail, 1)),
        num_warps=4,
    )
