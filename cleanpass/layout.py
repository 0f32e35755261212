"""Condition 4: a clone may go only when it has exactly its source's layout."""
from __future__ import annotations

import torch
from torch.fx import Node

from . import decisions
from ._compat import has_static_layout, statically_equal


def layout_verdict(clone: Node, source: Node) -> str | None:
    """None when size, stride, storage offset and dtype provably match; else a keep reason."""
    fake_clone, fake_source = clone.meta.get("val"), source.meta.get("val")
    if not isinstance(fake_clone, torch.Tensor) or not isinstance(fake_source, torch.Tensor):
        return decisions.LAYOUT_UNKNOWN
    if fake_clone.dtype != fake_source.dtype:
        return decisions.LAYOUT_DIFFERS
    offsets = fake_clone.storage_offset(), fake_source.storage_offset()
    if (type(offsets[0]) is int and type(offsets[1]) is int and has_static_layout(fake_clone)
            and has_static_layout(fake_source)):  # the common case: no guards
        same = (offsets[0] == offsets[1] and fake_clone.stride() == fake_source.stride()
                and fake_clone.shape == fake_source.shape)
    elif fake_clone.dim() != fake_source.dim():
        return decisions.LAYOUT_DIFFERS
    else:
        clone_layout = (*fake_clone.shape, *fake_clone.stride(), offsets[0])
        source_layout = (*fake_source.shape, *fake_source.stride(), offsets[1])
        same = all(statically_equal(a, b) for a, b in zip(clone_layout, source_layout))
    return None if same else decisions.LAYOUT_DIFFERS
