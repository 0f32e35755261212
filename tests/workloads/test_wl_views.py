"""Rotary writing q/k in place inside qkv once cleanpass removes their clones: the views must
reach the kernel as reinterpretations of the projection's buffer in Inductor's generated code,
never as a temporary copy (a write into a temporary would be lost)."""
from __future__ import annotations

import re

import pytest
import torch

from harness.run import compat
from workloads import catalog, pipeline


def call_arguments(code: str, callee: str) -> list[str]:
    """The top-level arguments of the first call of `callee` in `code` (as written)."""
    start = code.index(callee + "(") + len(callee) + 1
    args, depth, current = [], 0, ""
    for char in code[start:]:
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        if char == ")" and depth == 0:
            break
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return args + [current.strip()]


def reinterpreted_buffer(argument: str) -> str | None:
    """`bufN` when `argument` is `reinterpret_tensor(bufN, ...)`, else None."""
    found = re.match(r"reinterpret_tensor\((buf\d+),", argument)
    return found.group(1) if found else None


def test_reinterpretation_check_rejects_a_temporary() -> None:
    """The helper itself: a view passed as a fresh buffer (Inductor's copy) is not a base view."""
    copied = "torch.ops.k.default(arg8_1, buf7, reinterpret_tensor(buf5, (s, 256), (1024, 1), 512))"
    args = call_arguments(copied, "torch.ops.k.default")
    assert args[0] == "arg8_1" and reinterpreted_buffer(args[1]) is None
    assert reinterpreted_buffer(args[2]) == "buf5"


@pytest.mark.slow
def test_llama_block_rotary_writes_views_of_the_qkv_buffer() -> None:
    wl = catalog.get("llama_block")
    shape = wl.shapes("test")[0]
    built = wl.build(shape, torch.float32, "cpu")
    codes: list[str] = []
    with compat.measurement_config(), compat.capture_generated_code(codes):
        compiled = pipeline.compile_fn(built.fn, policy="sound")
        inputs = built.fresh_inputs()
        built.mark_token_dims(inputs, shape.hidden)
        compiled(*inputs)
    code = "\n".join(codes)
    report = compiled.reports[-1]
    assert sum(d.source.startswith("getitem") for d in report.removed) == 2  # q and k
    assert "rotary_embedding_torch_out" not in code  # not folded: written in place
    args = call_arguments(code, "torch.ops.cleanpass_kernels.rotary_embedding_torch_.default")
    q, k = reinterpreted_buffer(args[1]), reinterpreted_buffer(args[2])
    assert q is not None and q == k, args
    assert re.search(rf"extern_kernels\.mm\([^\n]*out={q}\)", code), "q/k are not views of the qkv projection"
    # the per-head view of q that attention reads is a view of the same buffer (meta re-propagated)
    sdpa = call_arguments(code, "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default")
    assert reinterpreted_buffer(sdpa[0]) == q, sdpa[0]
