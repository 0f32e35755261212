"""Condition 4: a clone may go only when it has exactly its source's layout."""
from __future__ import annotations

import torch
from torch.fx import Node

from . import decisions
from ._compat import statically_equal


def _fake(node: Node) -> torch.Tensor | None:
    val = node.meta.get("val")
    return val if isinstance(val, torch.Tensor) else None


def layout_verdict(clone: Node, source: Node) -> str | None:
    """None when size, stride, storage offset and dtype provably match; else a keep reason."""
    fake_clone, fake_source = _fake(clone), _fake(source)
    if fake_clone is None or fake_source is None:
        return decisions.LAYOUT_UNKNOWN
    if fake_clone.dtype != fake_source.dtype or fake_clone.dim() != fake_source.dim():
        return decisions.LAYOUT_DIFFERS
    clone_layout = (*fake_clone.shape, *fake_clone.stride(), fake_clone.storage_offset())
    source_layout = (*fake_source.shape, *fake_source.stride(), fake_source.storage_offset())
    if all(type(v) is int for v in clone_layout + source_layout):  # the common, static case
        same = clone_layout == source_layout
    else:
        same = all(statically_equal(a, b) for a, b in zip(clone_layout, source_layout))
    return None if same else decisions.LAYOUT_DIFFERS

