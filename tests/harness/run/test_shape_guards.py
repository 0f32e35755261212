"""The pass never specialises a dynamic-shape graph, and one that did would fail its row.

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


def _compile_and_call(token_counts: list[int], name: str = "rms_norm",
                      policy: str = "sound") -> tuple[CompiledEntry, list[Counts]]:
    """A workload (rms_norm: inputs the caller keeps, its clone folded) compiled as the harness
    does and called at each token count in turn; the entry, and its counts after each call."""
    workload = catalog.get(name)
    entry = CompiledEntry(compile_pipeline(policy))
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


@pytest.mark.parametrize("name", sorted(catalog.all_workloads()))
def test_no_workload_is_specialised_by_the_pass(name: str):
    """Every workload of the catalog (transformers' Llama, Qwen2 and Mistral included), compiled
    as the harness compiles it: the sound pass adds no shape guard."""
    if catalog.get(name).unavailable():
        pytest.skip(catalog.get(name).unavailable())
    _, seen = _compile_and_call([16], name)
    assert seen[0].clones_before and seen[0].shape_guards == ()


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
