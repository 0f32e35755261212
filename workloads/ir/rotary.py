"""rotary_embedding(positions, q, k, cos_sin_cache, head_size, is_neox) -> (q_out, k_out).

q is ``[tokens, heads * head_size]`` and k ``[tokens, kv_heads * head_size]``; in real models
both are views (split) of one fused qkv tensor, so the in-place kernels write into qkv's
storage: the aliasing case a clone pass must reason about through views.
``cos_sin_cache`` is ``[max_pos, rot_dim]``: cos in the first half, sin in the second.
"""
from __future__ import annotations

import torch

from workloads.ir import _providers as P
from workloads.ir.rms_norm import compute_dtype
from workloads.ir.registry import Impl, define_op, register_impl, tensor_bytes


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, head_size: int, is_neox: bool) -> torch.Tensor:
    """Rotate each head of ``x`` ([T, H*hs]) in the compute dtype of cos/sin."""
    shape = x.shape
    x = x.unflatten(-1, (-1, head_size)).to(cos.dtype)
    rot_dim = cos.shape[-1] * 2
    rot, rest = x[..., :rot_dim], x[..., rot_dim:]
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    if is_neox:
        x1, x2 = rot.chunk(2, dim=-1)
        out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    else:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)
    return torch.cat((out, rest), dim=-1).reshape(shape)


def _cos_sin(positions: torch.Tensor, cache: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    cs = cache.index_select(0, positions.flatten()).to(dtype)
    return cs.chunk(2, dim=-1)


def rotary_native(positions, q, k, cos_sin_cache, head_size: int, is_neox: bool):  # noqa: ANN001
    """fp32 compute, cast back to q/k's dtype; outputs are fresh contiguous tensors."""
    cos, sin = _cos_sin(positions, cos_sin_cache, compute_dtype(q.dtype))
    return (_rotate(q, cos, sin, head_size, is_neox).to(q.dtype),
            _rotate(k, cos, sin, head_size, is_neox).to(k.dtype))


def rotary_reference(positions, q, k, cos_sin_cache, head_size: int, is_neox: bool):  # noqa: ANN001
    cos, sin = _cos_sin(positions, cos_sin_cache, torch.float64)
    return _rotate(q, cos, sin, head_size, is_neox), _rotate(k, cos, sin, head_size, is_neox)


def _fake(positions, q, k, cos_sin_cache, head_size, is_neox):  # noqa: ANN001
    return q.new_empty(q.shape), k.new_empty(k.shape)


def _read_bytes(args) -> int:  # noqa: ANN001
    """Byte model: read positions, q and k, and one cos/sin cache row per position."""
    positions, q, k, cache = args[:4]
    rows = positions.numel() * cache.shape[-1] * cache.element_size()
    return tensor_bytes(positions) + tensor_bytes(q) + tensor_bytes(k) + rows


OP = define_op(
    "rotary_embedding",
    "(Tensor positions, Tensor q, Tensor k, Tensor cos_sin_cache, int head_size, bool is_neox)"
    " -> (Tensor, Tensor)",
    native=rotary_native,
    fake=_fake,
    reference=rotary_reference,
    activations=(1, 2),
    read_bytes=_read_bytes,
)


@torch.library.custom_op("cleanpass_kernels::rotary_embedding_torch_out", mutates_args=("q_out", "k_out"))
def rotary_embedding_torch_out(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                               cos_sin_cache: torch.Tensor, head_size: int, is_neox: bool,
                               q_out: torch.Tensor, k_out: torch.Tensor) -> None:
    """Torch-written (any device, any strides): q_out, k_out <- rotated q, k, the dims past
    rot_dim copied; an output may be its own input."""
    q_rot, k_rot = rotary_native(positions, q, k, cos_sin_cache, head_size, is_neox)
    q_out.copy_(q_rot)
    k_out.copy_(k_rot)


@torch.library.custom_op("cleanpass_kernels::rotary_embedding_torch_", mutates_args=("q", "k"))
def rotary_embedding_torch_(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                            cos_sin_cache: torch.Tensor, head_size: int, is_neox: bool) -> None:
    """Torch-written in place (any device, any strides): q, k <- rotated q, k."""
    rotary_embedding_torch_out(positions, q, k, cos_sin_cache, head_size, is_neox, q, k)


@torch.library.custom_op("cleanpass_kernels::rotary_embedding_triton_out", mutates_args=("q_out", "k_out"))
def rotary_embedding_triton_out(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                                cos_sin_cache: torch.Tensor, head_size: int, is_neox: bool,
                                q_out: torch.Tensor, k_out: torch.Tensor) -> None:
    """Triton; strided and offset views of a fused qkv are fine on either side."""
    from workloads.kernels import triton_rotary

    triton_rotary.rotary_embedding(positions, q, k, cos_sin_cache, head_size, is_neox, q_out, k_out)


@torch.library.custom_op("cleanpass_kernels::rotary_embedding_triton_", mutates_args=("q", "k"))
def rotary_embedding_triton_(positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                             cos_sin_cache: torch.Tensor, head_size: int, is_neox: bool) -> None:
    """Triton in place: the out-of-place kernel with q and k as their own outputs."""
    from workloads.kernels import triton_rotary

    triton_rotary.rotary_embedding(positions, q, k, cos_sin_cache, head_size, is_neox, q, k)


for _kernel in (rotary_embedding_torch_, rotary_embedding_triton_,
                rotary_embedding_torch_out, rotary_embedding_triton_out):
    _kernel.register_fake(P.returns_none)


def _triton_supports(positions, q, k, cos_sin_cache, head_size, is_neox) -> bool:  # noqa: ANN001
    rot_dim = cos_sin_cache.shape[-1]
    return (P.triton_device_ok(positions, q, k, cos_sin_cache) and q.dim() == 2 and k.dim() == 2
            and cos_sin_cache.is_contiguous() and P.is_pow2(rot_dim // 2) and rot_dim <= head_size
            and positions.dim() == 1)


register_impl("rotary_embedding", Impl(
    P.TRITON, torch.ops.cleanpass_kernels.rotary_embedding_triton_.default, inplace=True,
    priority=P.PRIORITY[P.TRITON], supports=_triton_supports, writes=(1, 2), outputs=(1, 2),
    out_of_place=torch.ops.cleanpass_kernels.rotary_embedding_triton_out.default,
    any_layout=P.is_2d))
register_impl("rotary_embedding", Impl(
    P.TORCH, torch.ops.cleanpass_kernels.rotary_embedding_torch_.default, inplace=True,
    priority=P.PRIORITY[P.TORCH], writes=(1, 2), outputs=(1, 2),
    out_of_place=torch.ops.cleanpass_kernels.rotary_embedding_torch_out.default,
    any_layout=True))
