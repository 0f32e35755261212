"""``bytes_exact``: our byte count, exact for views, pinned to each workload's byte model and
reconciled with the pass's decisions; Inductor's own count (``bytes_accessed``) fails both."""
from __future__ import annotations

import pytest
import torch

from cleanpass.decisions import CloneReport, Decision
from harness.run import api, suites
from harness.run.compat import SchedulerKernel
from harness.run.exact_bytes import EagerBytes, decided_bytes, exact_bytes
from harness.store import results
from workloads import catalog
from workloads.catalog import Shape
from workloads.ir.registry import kernel_call_bytes
from workloads.pipeline import CountReport

kernels = torch.ops.cleanpass_kernels


def _rotary_args(tokens: int = 4, heads: int = 2, head: int = 8):
    qk = torch.randn(2, tokens, heads * head)
    positions = torch.arange(tokens)
    cache = torch.randn(16, head)
    return positions, qk, cache


def test_a_kernel_on_views_is_charged_for_the_views_not_their_base():
    positions, qk, cache = _rotary_args()
    q, k = qk.unbind(0)
    view_bytes = q.numel() * 4
    got = kernel_call_bytes(kernels.rotary_embedding_torch_.default, (positions, q, k, cache, 8, True))
    # read + write q and k, positions, one cache row per position
    assert got == 4 * view_bytes + positions.numel() * 8 + positions.numel() * 8 * 4
    out_q, out_k = torch.empty_like(q), torch.empty_like(k)
    assert kernel_call_bytes(kernels.rotary_embedding_torch_out.default,
                             (positions, q, k, cache, 8, True, out_q, out_k)) == got
    x = torch.randn(6, 32)
    assert kernel_call_bytes(kernels.silu_and_mul_torch.default, (x,)) == x.numel() * 4 * 3 // 2
    assert kernel_call_bytes(torch.ops.aten.add.Tensor, (x, x)) is None


def test_exact_bytes_replace_inductors_charge_for_our_kernels_only():
    positions, qk, cache = _rotary_args()
    q, k = qk.unbind(0)
    ours = SchedulerKernel("op1", inductor_bytes=10**6, target=kernels.rotary_embedding_torch_.default,
                           args=(positions, q, k, cache, 8, True), kwargs={})
    theirs = SchedulerKernel("op0", inductor_bytes=1234)
    modelled = kernel_call_bytes(ours.target, ours.args)
    assert exact_bytes([[theirs, ours]]) == 1234 + modelled
    assert exact_bytes([[theirs], None]) is None and exact_bytes([]) is None
    unread = SchedulerKernel("op2", 99, target=kernels.rms_norm_torch_.default, args=None)
    assert exact_bytes([[theirs, unread]]) is None  # ours, arguments unknown: no guess
    assert exact_bytes([[SchedulerKernel("op3", 99, target=torch.ops.aten.mm.default, args=None)]]) == 99
    # any other fallback kernel (e.g. attention) reads the views it gets, not their base
    base = torch.randn(4, 24)
    view, out = base[:, :8], torch.empty(4, 8, device="meta")
    add = SchedulerKernel("op4", 10**6, target=torch.ops.aten.add.Tensor, args=(view, view), kwargs={},
                          outputs=(out,))
    assert exact_bytes([[add]]) == 3 * view.numel() * 4
    hop = SchedulerKernel("op5", 7, target=torch.ops.higher_order.auto_functionalized, args=(), kwargs={})
    assert exact_bytes([[hop]]) == 7  # no schema to read: Inductor's count


def test_decided_bytes_are_read_and_write_of_every_removed_or_folded_clone():
    report = CloneReport("sound", removed=[Decision("c0", "s", "removed", 100)],
                         kept=[Decision("c1", "s", "layout-differs", 7)], folded=[Decision("c2", "s", "folded", 30)])
    assert decided_bytes([report, CloneReport("sound")]) == 2 * (100 + 30)
    assert decided_bytes([CountReport(2, 2)]) is None
    assert decided_bytes([CloneReport("sound", removed=[Decision("c0", "s", "removed", None)])]) is None


def _row(variant: str, exact: int | None, decided: int | None = None, at: int = 32) -> results.Row:
    return results.Row(workload="w", variant=variant, dtype="float32", num_tokens=32, hidden=8,
                       bytes_exact=exact, bytes_decided=decided, bytes_at_tokens=at)


def test_bytes_note_is_empty_when_the_exact_saving_matches_the_decisions_and_says_why_not():
    df = results.rows_to_frame([_row("lowered", 1000), _row("cleanpass", 800, 200), _row("vllm", 900, 200),
                                _row("ideal", 700)], None)
    notes = dict(zip(df["variant"], df["bytes_note"]))
    assert notes["cleanpass"] == "" and notes["ideal"] == "" and notes["lowered"] == ""
    assert notes["vllm"].startswith("removed 100 bytes, decisions say 200 (-100)")
    other_tokens = results.rows_to_frame([_row("lowered", 1000), _row("cleanpass", 25, 200, at=1)], None)
    assert "different token counts (lowered at 32, this row at 1)" in other_tokens["bytes_note"][1]
    missing = results.rows_to_frame([_row("lowered", None), _row("cleanpass", 800, 200)], None)
    assert missing["bytes_note"][1] == "no exact count to reconcile: lowered bytes_exact"


def test_old_files_without_the_exact_columns_still_load():
    df = results.rows_to_frame([_row("lowered", 1000)], None).drop(columns=list(results.EXACT_BYTES_COLUMNS))
    back = results.normalize_frame(df)
    assert back["bytes_exact"].isna().all() and (back["bytes_note"] == "").all()


def test_eager_ops_read_their_arguments_and_write_their_results_views_and_allocations_are_free():
    a, b = torch.randn(8, 4), torch.randn(4, 16)
    with EagerBytes() as counted:
        torch.mm(a, b)
    assert counted.total == (a.numel() + b.numel() + 8 * 16) * 4
    with EagerBytes() as counted:
        view = a.t()[1:3]
        torch.empty(100)
    assert counted.total == 0 and view.shape == (2, 8)
    with EagerBytes() as counted:
        a.add_(1.0)  # read and write a
        b.copy_(torch.zeros(4, 16))  # the zeros written once, then read; b only written
    assert counted.total == 2 * a.numel() * 4 + 3 * b.numel() * 4


def _saving_counted_apart(name: str, shape: Shape) -> int:
    """Bytes by which ``lowered`` - ``cleanpass`` falls short of the decisions (fp32).

    llama_block: in ``lowered`` the kv-expansion kernel reads k from the rotary clone, a dense
    buffer, and Inductor charges that read at k's own size; once cleanpass removes the clone, k
    is a column block of qkv and Inductor charges the same kernel's read at the expanded size
    (heads / kv_heads times k), as it does for v. The elements read are the same.
    """
    d, t = shape.dims, shape.num_tokens
    if name == "llama_block":
        return 4 * (d.heads // d.kv_heads - 1) * t * d.kv_size
    return 0


def _extra_bytes(name: str, variant: str, shape: Shape) -> int:
    """What a variant moves beyond the byte model, element by element (fp32), on CPU.

    llama_block's graph has copies of its own that no pass may remove (the kv heads expanded for
    attention, kept as ``layout-differs``): the compiled code's one fused expansion kernel reads
    k and (as Inductor charges it) v at the expanded size and writes both expanded; attention
    reads the expanded k and v and also writes its log-sum-exp (one value per head and token).
    The eager ``ideal`` copies through ``reshape`` (reading the expanded views). rotary_views'
    eager ``ideal`` matmul reads x once per batch of the projection (``torch.matmul``
    broadcasts it for ``bmm``).
    """
    d, t = shape.dims, shape.num_tokens
    if name == "llama_block" and variant == "cleanpass":
        return 4 * (5 * t * d.q_size - t * d.kv_size + t * d.heads) + _saving_counted_apart(name, shape)
    if name == "llama_block" and variant == "ideal":
        return 4 * (6 * t * d.q_size + t * d.heads - 2 * t * d.kv_size)
    if name.startswith("rotary_views") and variant == "ideal":
        return 4 * t * d.hidden
    return 0


SMOKE_WORKLOADS = sorted(n for n, wl in catalog.all_workloads().items() if wl.shapes("smoke"))


@pytest.mark.slow
def test_every_smoke_workload_moves_its_byte_model_and_the_pass_removes_what_it_decided(tmp_path):
    """At the compiled token count (32) and at one that reuses that graph (8): ``cleanpass`` and
    ``ideal`` move the byte model (plus the real copies above), ``lowered`` that plus the read and
    write of every clone the pass removed or folded (less what Inductor counts apart, above)."""
    run = api.run(suite="smoke", device="cpu", tokens=[32, 8], variants=["lowered", "cleanpass", "ideal"],
                  out=tmp_path / "run", plan=suites.PLANS["test"])
    df = run.results
    assert set(df["workload"]) == set(SMOKE_WORKLOADS)
    assert df["ok"].all(), df.loc[~df["ok"], ["workload", "variant", "error"]]
    for (name, tokens), case in df.groupby(["workload", "num_tokens"]):
        wl, rows = catalog.get(name), case.set_index("variant")
        for variant, row in rows.iterrows():
            at = Shape(int(row["bytes_at_tokens"]), int(row["hidden"]), str(row["model"]))
            assert row["bytes_at_tokens"] == (tokens if variant == "ideal" else 32)
            expected = wl.model_bytes(at, torch.float32) + _extra_bytes(name, variant, at)
            if variant == "lowered":
                expected = (rows.loc["cleanpass", "bytes_exact"] + rows.loc["cleanpass", "bytes_decided"]
                            - _saving_counted_apart(name, at))
            assert row["bytes_exact"] == expected, (name, tokens, variant)
        assert rows.loc["cleanpass", "bytes_decided"] > 0
        assert (rows.loc["cleanpass", "bytes_note"] == "") == (_saving_counted_apart(name, at) == 0), name
    rotary = df[(df["workload"] == "rotary_views") & (df["num_tokens"] == 32)].set_index("variant")
    removed = rotary.loc["lowered", "bytes_exact"] - rotary.loc["cleanpass", "bytes_exact"]
    assert removed == rotary.loc["cleanpass", "bytes_decided"] > 0
    # Inductor's count bills rotary for the whole qk buffer behind its q and k views: it cannot
    # show the model's bytes, nor the saving the decisions claim
    inductor_removed = rotary.loc["lowered", "bytes_accessed"] - rotary.loc["cleanpass", "bytes_accessed"]
    assert rotary.loc["cleanpass", "bytes_accessed"] > rotary.loc["cleanpass", "model_bytes"]
    assert inductor_removed != removed
