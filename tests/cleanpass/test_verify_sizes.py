"""The differential checker at other sizes: a graph traced with symbolic sizes runs at its
trace-time sizes and at every allowed value of `other_sizes`, so a transformation right only
at the traced size is caught."""
from __future__ import annotations

import torch

from cleanpass import verify

from .helpers import trace

X = torch.randn(4, 8)


def _doubled(x):
    return x * 2


def _doubled_unless_one_row(x):
    """Equal to `_doubled` at 4 rows, one more everywhere at a single row."""
    return x * 2 + (torch.ones_like(x).sum(0, keepdim=True) == 1)


def test_a_graph_right_only_at_the_traced_size_fails_at_one():
    before, after = trace(_doubled, X, mode="oblivious"), trace(_doubled_unless_one_row, X, mode="oblivious")
    assert verify.check(before, after, trials=2).ok  # the traced size alone cannot tell
    result = verify.check(before, after, trials=1, other_sizes=(1, 2, 3))
    assert not result.ok and result.problems == ["all sizes 1: output 0 differs"]


def test_sizes_the_shape_environment_rules_out_are_not_run():
    """make_fx's plain symbolic mode starts every size at 2 (0 and 1 are specialised), so 1 is
    no size its graph runs at; under "oblivious" it is."""
    symbolic = trace(_doubled, X, mode="symbolic")
    assert verify.check(symbolic, symbolic, trials=1, other_sizes=(1, 2, 3)).sizes_checked == [2, 3]
    oblivious = trace(_doubled, X, mode="oblivious")
    assert verify.check(oblivious, oblivious, trials=1, other_sizes=(1, 2, 3)).sizes_checked == [1, 2, 3]


def test_a_graph_with_static_sizes_has_no_other_sizes():
    static = trace(_doubled, X)
    assert verify.size_assignments(static, (1, 2)) == []
    assert verify.check(static, static, trials=1, other_sizes=(1, 2)).sizes_checked == []
