"""Random programs with clones of strided and offset views (column blocks of a projection, every
other column, row slices), each clone read by a random mix of any-layout kernels, views valid
or invalid on the source's strides, ops that may need a dense layout, pointwise ops and graph
outputs: the differential checker finds no miscompile, and the rule is exercised both ways."""
from __future__ import annotations

import random

import torch

from .helpers import run_pass
from .ops import ops
from .test_strided import _read, _read_heads, strided

PROGRAMS = 120
ROWS, COLS = 6, 24


def _source(qkv: torch.Tensor, rng: random.Random) -> torch.Tensor:
    kind = rng.choice(["block", "offset-block", "every-other", "rows", "rows"])
    if kind == "block":
        return qkv[:, :8]
    if kind == "offset-block":
        return qkv[:, 8:16]
    if kind == "every-other":
        return qkv[:, ::2]
    return qkv[1:5]


def _use(c: torch.Tensor, rng: random.Random, outputs: list[torch.Tensor]) -> None:
    """One reader of the clone, chosen at random."""
    kind = rng.choice(["kernel", "kernel", "rows-kernel", "head-view", "head-view", "unknown-kernel",
                       "flat-view", "dense", "pointwise", "return", "return-view"])
    if kind == "kernel":
        strided.rotate_(c, c[:, :0])
    elif kind == "rows-kernel":
        strided.rows_(c)
    elif kind == "unknown-kernel":
        ops.scale_(c, 1.5)
    elif kind == "head-view":
        outputs.append(_read_heads(c.view(c.shape[0], 2, -1)))
    elif kind == "flat-view":
        outputs.append(c.view(-1) + 1)
    elif kind == "dense":
        outputs.append(strided.dense_sum(c))
    elif kind == "pointwise":
        outputs.append(c * 3 - 1)
    elif kind == "return":
        outputs.append(c)
    else:
        outputs.append(c[:, 1:])


def _program(seed: int):
    def f(x, w):
        rng = random.Random(seed)
        qkv = x @ w
        outputs: list[torch.Tensor] = []
        for _ in range(rng.randint(1, 3)):
            c = _source(qkv, rng).clone()
            for _ in range(rng.randint(1, 2)):
                _use(c, rng, outputs)
            outputs.append(_read(c) if rng.random() < 0.8 else c.sum(0))
        if rng.random() < 0.3:
            outputs.append(qkv)  # the base read after every write
        return tuple(outputs)
    return f


def test_random_strided_programs_never_miscompile():
    x, w = torch.randn(ROWS, 16), torch.randn(16, COLS)
    removed = kept = 0
    for seed in range(PROGRAMS):
        out = run_pass(_program(seed), x, w, trials=1)
        assert out.check.ok, (seed, out.check.problems)
        removed += len(out.report.removed)
        kept += len(out.report.kept)
    # guard: both outcomes occur, so the programs exercise the rule
    assert removed > PROGRAMS // 4 and kept > PROGRAMS // 4, (removed, kept)
    print(f"\nstrided property test: {PROGRAMS} programs, {removed} clones removed, {kept} kept, 0 miscompiles")


def test_random_strided_programs_with_symbolic_token_counts_add_no_shape_guard():
    """The same programs with a symbolic token count that may be 0 or 1 (the projection's
    weight is a constant, as in a compiled model): the rule's fake re-runs of views and readers
    must not specialise the graph (run_pass checks `guards_added`), what it removes stays right
    at other token counts (1 included), and it still removes."""
    x = torch.randn(ROWS, 16)
    removed = other_sizes = 0
    for seed in range(PROGRAMS // 3):
        program = _program(seed)
        out = run_pass(lambda x: program(x, _constant_weight()), x, trials=1, mode="oblivious")
        assert out.check.ok, (seed, out.check.problems)
        removed += len(out.report.removed)
        other_sizes += len(out.check.sizes_checked)  # token counts 1, 2, 3 where the program runs
    assert removed > PROGRAMS // 12, removed
    assert other_sizes > PROGRAMS // 3, other_sizes


def _constant_weight() -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, 16 * COLS).reshape(16, COLS)
