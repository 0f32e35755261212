"""A generator of random programs over tensors, for property-based tests of the pass.

A program is a list of instructions over a pool of values (inputs first). Each instruction
picks its operands by index modulo the pool size, so any list hypothesis draws is runnable.
The mix leans on what lowerings produce (clone + in-place kernel, whose clones the pass may
fold into out-of-place kernels) and on what breaks unsound passes (views, bases, strided and
offset views, column splits and every other column that interleave in memory, also of 3-D
views, writes to inputs, `copy_`, several outputs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from .ops import ops

KINDS = (
    "pointwise", "unary", "rows", "split", "reshape", "transpose", "clone", "contiguous",
    "clone_inplace", "clone_inplace", "clone_inplace", "scale_", "add_", "write_kw",
    "write_list", "copy_", "column_split", "every_other_column", "clone_fused", "batches",
)
SHAPE = (4, 6)


@dataclass(frozen=True)
class Program:
    num_inputs: int
    instructions: tuple[tuple[str, int, int], ...]
    outputs: tuple[int, ...]
    donated: tuple[int, ...]

    def inputs(self) -> list[torch.Tensor]:
        return [torch.randn(*SHAPE) for _ in range(self.num_inputs)]

    def __call__(self, *inputs: torch.Tensor):
        pool = list(inputs)
        for kind, a, b in self.instructions:
            x, y = pool[a % len(pool)], pool[b % len(pool)]
            same = x.shape == y.shape and x is not y
            if kind == "pointwise":
                pool.append(x * 1.5 + y if same else x * 1.5 - 0.5)
            elif kind == "unary":
                pool.append(torch.sin(x) + 0.25)
            elif kind == "rows" and x.dim() == 2 and x.shape[0] >= 2:
                start = b % (x.shape[0] - 1)
                pool.append(x[start:start + 2])
            elif kind == "split" and x.dim() == 2 and x.shape[0] % 2 == 0:
                pool.extend(x.split(x.shape[0] // 2, dim=0))
            elif kind == "reshape" and x.is_contiguous():
                pool.append(x.view(-1))
            elif kind == "transpose" and x.dim() == 2:
                pool.append(x.t())
            elif kind == "clone":
                pool.append(x.clone())
            elif kind == "contiguous":
                pool.append(x.contiguous())
            elif kind == "clone_inplace":
                c = x.clone()
                ops.scale_(c, 1.25)
                pool.append(c)
            elif kind == "scale_":
                ops.scale_(x, 0.75)
            elif kind == "add_" and same:
                x.add_(y)
            elif kind == "write_kw" and same:
                torch.ops.cleanpass_test.write_kw(y, out=x)
            elif kind == "write_list":
                ops.write_list([x])
            elif kind == "copy_" and same:
                x.copy_(y * 2)
            elif kind == "column_split" and x.dim() >= 2 and x.shape[-1] % 2 == 0:
                pool.extend(x.split(x.shape[-1] // 2, dim=-1))
            elif kind == "every_other_column" and x.dim() >= 2 and x.shape[-1] >= 2:
                pool.append(x[..., b % 2::2])
            elif kind == "batches" and x.dim() == 2 and x.shape[0] % 2 == 0 and x.is_contiguous():
                pool.append(x.view(2, x.shape[0] // 2, x.shape[1]))  # 3-D: its splits interleave
            elif kind == "clone_fused" and same:
                c, d = x.clone(), y.clone()
                ops.fused_add_norm_(c, d, x.new_ones(x.shape[-1]))
                pool.extend((c, d))
        return tuple(pool[i % len(pool)] for i in self.outputs)


@st.composite
def programs(draw, max_instructions: int = 12) -> Program:
    num_inputs = draw(st.integers(1, 3))
    instructions = draw(st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 31), st.integers(0, 31)),
        min_size=2, max_size=max_instructions))
    outputs = draw(st.lists(st.integers(0, 63), min_size=1, max_size=3))
    donated = draw(st.lists(st.integers(0, num_inputs - 1), max_size=num_inputs, unique=True))
    return Program(num_inputs, tuple(instructions), tuple(outputs), tuple(sorted(donated)))
