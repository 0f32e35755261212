"""A pass that specialises a dynamic-shape graph fails its row.

The harness compiles each variant once at the group's largest token count with a dynamic token
dim (``backed_size_oblivious``: sizes may be 0 or 1, as in vLLM) and serves every other token
count from that compile. A guard the pass adds (asking "is this size 1?" the plain way) would
make the program recompile there, or, under a caller that drops guards, be right only where
the guard holds; the pass reports it and the runner fails the row.
"""
from __future__ import annotations

import pytest
import torch

import cleanpass.fold
from harness.run import compat, runner
from harness.run.compile import CompiledEntry, Counts, first_call
from harness.run.variants import Prepared, compile_pipeline
from harness.store.results import Row, Status
from workloads import catalog

pytestmark = pytest.mark.slow


def _compile_and_call(token_counts: list[int]) -> tuple[CompiledEntry, list[Counts]]:
    """rms_norm on inputs the caller keeps (its clone is folded), compiled as the harness does
    and called at each token count in turn; the entry, and its counts after each call."""
    workload = catalog.get("rms_norm")
    entry = CompiledEntry(compile_pipeline("sound"))
    seen = []
    with compat.measurement_config():
        for tokens in token_counts:
            shape = catalog.Shape(num_tokens=tokens, hidden=512, model="tiny-gqa")
            built = workload.build(shape, torch.float32, "cpu")
            first_call(entry, built.fn, built.fresh_inputs(), tokens, lambda: None,
                       lambda ins: built.mark_token_dims(ins, shape.hidden))
            seen.append(entry.counts)
    return entry, seen


def test_the_pass_serves_every_token_count_from_one_compile():
    entry, seen = _compile_and_call([16, 1, 5])
    assert entry.compiles == 1
    assert seen[0].shape_guards == () and entry.counts.bytes_at_tokens == 16


def test_a_pass_that_asks_about_sizes_the_plain_way_fails_its_row(monkeypatch: pytest.MonkeyPatch):
    """The regression this guards against: the fold's layout check comparing sizes with `==`
    (it did: `Ne(s0, 1)` made every token count of 1 recompile)."""
    monkeypatch.setattr(cleanpass.fold, "statically_equal", lambda a, b: bool(a == b))
    entry, seen = _compile_and_call([16, 1])
    assert entry.compiles == 2
    assert any(guard.startswith("Ne(") for guard in seen[0].shape_guards), seen[0].shape_guards

    row = Row(workload="rms_norm", variant="cleanpass", dtype="float32", num_tokens=16, hidden=512)
    runner._fill_counts(row, Prepared(call=lambda: None, inputs=(), counts=seen[0]))
    assert row.status is Status.FAIL and not row.ok
    assert row.error.startswith("the pass specialised the graph on shape guards: Ne(")
