"""Clones of strided and offset views (cleanpass.strided): removed when every reader takes the
source's layout, kept with a reason wherever one reader would see the difference."""
from __future__ import annotations

import pytest
import torch

import cleanpass
from cleanpass import decisions
from cleanpass.columns import disjoint_columns, disjoint_elements
from cleanpass.strided import provably_non_overlapping

from .helpers import run_pass, trace
from .ops import ops

LIB = "cleanpass_test_strided"


@torch.library.custom_op(f"{LIB}::rotate_", mutates_args=("q", "k"))
def rotate_(q: torch.Tensor, k: torch.Tensor) -> None:
    """A rotary-like in-place kernel on q and k that works on any strides (torch ops)."""
    q.mul_(2.0).add_(1.0)
    k.mul_(-0.5)


@torch.library.custom_op(f"{LIB}::rows_", mutates_args=("x",))
def rows_(x: torch.Tensor) -> None:
    """In place; declared to take any layout of 2-D tensors only."""
    x.add_(x.sum(-1, keepdim=True))


@torch.library.custom_op(f"{LIB}::dense_sum", mutates_args=())
def dense_sum(x: torch.Tensor) -> torch.Tensor:
    """A functional op that (as far as the pass knows) may need its input dense."""
    return x.sum(0)


for _op in (rotate_, rows_):
    _op.register_fake(lambda *args, **kwargs: None)


@dense_sum.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape[1:])


cleanpass.register_any_layout(rotate_._opoverload)
cleanpass.register_any_layout(rows_._opoverload, {"x": lambda value: value.dim() == 2})
strided = torch.ops.cleanpass_test_strided


def _qkv(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A fused projection split into column blocks: q at offset 0, k and v at offsets."""
    return (x @ w).split([8, 4, 4], dim=-1)


X, W = torch.randn(6, 16), torch.randn(16, 16)


def _read(t: torch.Tensor) -> torch.Tensor:
    """A reader that takes row strides (a matmul): the view's layout computes the same bits."""
    return t @ torch.ones(t.shape[-1], 3)


def _read_heads(t: torch.Tensor) -> torch.Tensor:
    """The same for a [tokens, heads, head_dim] view: a batched matmul over heads."""
    return torch.bmm(t.transpose(0, 1), torch.ones(t.shape[1], t.shape[2], 3))


def test_rotary_on_column_views_loses_both_clones():
    """llama_block's pattern: q/k clones handed to an any-layout kernel, then viewed per head;
    v read afterwards is a disjoint column block."""
    def f(x, w):
        q, k, v = _qkv(x, w)
        cq, ck = q.clone(), k.clone()
        strided.rotate_(cq, ck)
        return _read_heads(cq.view(6, 2, 4)), _read_heads(ck.view(6, 1, 4).expand(6, 2, 4)), _read(v)

    out = run_pass(f, X, W)
    assert [d.reason for d in out.report.removed] == [decisions.REMOVED] * 2
    assert out.report.clones_after == 0
    assert out.check.ok, out.check.problems


def test_readers_get_the_source_layout_in_meta():
    """After the removal every changed reader's meta["val"] has the source's strides and storage."""
    def f(x, w):
        q, _, _ = _qkv(x, w)
        c = q.clone()
        strided.rotate_(c, c[:, :0])
        return _read_heads(c.view(6, 2, 4))

    out = run_pass(f, X, W)
    assert out.report.clones_after == 0 and out.check.ok
    view = next(n for n in out.after.graph.nodes if n.target is torch.ops.aten.view.default)
    base = view.args[0].meta["val"]
    assert view.meta["val"].stride() == (16, 4, 1)
    assert view.meta["val"].untyped_storage()._cdata == base.untyped_storage()._cdata


def test_second_run_removes_nothing():
    def f(x, w):
        q, k, _ = _qkv(x, w)
        cq, ck = q.clone(), k.clone()
        strided.rotate_(cq, ck)
        return _read_heads(cq.view(6, 2, 4)), _read(ck)

    out = run_pass(f, X, W)
    assert out.report.clones_after == 0
    again = cleanpass.eliminate_clones(out.after)
    assert again.clones_before == 0


# Readers of q's clone that see its layout, each keeping the clone with its reason.
def _flat_view(c):  # noqa: ANN001, ANN202
    """c.view(-1) flattens dims that q's row stride keeps apart: no view of q exists."""
    strided.rotate_(c, c[:, :0])
    return c.view(-1) * 2


def _reshape_then_write(c):  # noqa: ANN001, ANN202
    """On q's strides reshape(-1) copies: a write through it would miss q."""
    ops.scale_(torch.ops.aten.reshape.default(c, [-1]), 3.0)
    return _read(c)


def _dense_op(c):  # noqa: ANN001, ANN202
    """An op the pass does not know may need its input dense."""
    strided.rotate_(c, c[:, :0])
    return strided.dense_sum(c)


def _undeclared_kernel(c):  # noqa: ANN001, ANN202
    """scale_ has an out-of-place form but never said it takes strided arguments."""
    ops.scale_(c, 2.0)
    return _read(c)


def _refused_by_predicate(c):  # noqa: ANN001, ANN202
    """rows_ takes any 2-D layout; a 3-D view of the strided source is refused."""
    strided.rows_(c.view(6, 2, 4))
    return _read(c)


def _returned_view(c):  # noqa: ANN001, ANN202
    """The caller would see q's row stride."""
    strided.rotate_(c, c[:, :0])
    return c.view(6, 2, 4)


def _whole_sum(c):  # noqa: ANN001, ANN202
    """Contiguous, the rows coalesce into one run; as a view of the projection they do not,
    and the sum's rounding could change."""
    strided.rotate_(c, c[:, :0])
    return c.sum()


@pytest.mark.parametrize("reader, reason", [
    (_flat_view, decisions.STRIDED_VIEW_INVALID),
    (_reshape_then_write, decisions.STRIDED_VIEW_INVALID),
    (_dense_op, decisions.STRIDED_USER),
    (_undeclared_kernel, decisions.STRIDED_USER),
    (_refused_by_predicate, decisions.STRIDED_USER),
    (_returned_view, decisions.STRIDED_OUTPUT),
    (_whole_sum, decisions.STRIDED_USER),
], ids=lambda v: v.__name__.strip("_") if callable(v) else v)
def test_a_reader_that_sees_the_layout_keeps_the_clone(reader, reason):
    def f(x, w):
        q, _, _ = _qkv(x, w)
        return reader(q.clone())

    out = run_pass(f, X, W)
    assert out.reasons == [reason]
    assert out.check.ok


def test_pointwise_result_with_unchanged_layout_may_be_returned():
    """Rows 1-4 of the projection (only the offset differs): c + 1 walks the same elements in the
    same order and is a fresh dense tensor either way; the caller sees nothing new."""
    def f(x, w):
        c = (x @ w)[1:5].clone()
        strided.rows_(c)
        return c + 1

    out = run_pass(f, X, W)
    assert out.report.clones_after == 0
    assert out.check.ok


def test_self_overlapping_source_keeps_the_clone():
    """An expanded source repeats addresses: one in-place write would land on several elements."""
    def f(x):
        s = (x * 2)[:, :1].expand(6, 4)
        c = s.clone()
        strided.rows_(c)
        return c.sum(0)

    out = run_pass(f, X)
    assert out.reasons == [decisions.LAYOUT_DIFFERS]
    assert out.check.ok


@pytest.mark.parametrize("copy", ["clone", "contiguous"])
def test_plain_clone_and_contiguous_copy_go_alike(copy):
    """rows_ takes q's 2-D layout and so does the matmul reading it after: a plain clone and
    `.contiguous()` (the same elements, a fixed layout) both go; the layout a reader needs
    keeps either (test_a_contiguous_copy_stays_where_a_reader_needs_its_layout)."""
    def f(x, w):
        q, _, _ = _qkv(x, w)
        c = getattr(q, copy)()
        strided.rows_(c)
        return _read(c)

    out = run_pass(f, X, W)
    assert out.reasons == []
    assert out.check.ok


def test_base_read_after_the_write_keeps_the_clone():
    """Condition 1 still applies: the projection itself is returned after rotary writes q."""
    def f(x, w):
        qkv = x @ w
        q = qkv[:, :8]
        c = q.clone()
        strided.rotate_(c, c[:, :0])
        return _read(c), qkv

    out = run_pass(f, X, W)
    assert out.reasons == [decisions.SOURCE_READ_AFTER_WRITE]
    assert out.check.ok


def test_strided_view_of_a_kept_input_keeps_the_clone():
    """Condition 3 still applies: the caller's tensor is not written through a view of it."""
    def f(x):
        c = x[:, 4:12].clone()
        strided.rows_(c)
        return _read(c)

    out = run_pass(f, X)
    assert out.reasons == [decisions.READ_ONLY_INPUT]
    assert out.check.ok
    donated = run_pass(f, X, donated=(0,))
    assert donated.report.clones_after == 0 and donated.check.ok


@pytest.mark.parametrize("mode", ["fake", "symbolic", "oblivious"])
def test_differential_check_on_strided_programs(mode):
    """A mix: removed and kept strided clones in one graph, bit-identical after the pass."""
    def f(x, w):
        q, k, v = _qkv(x, w)
        cq, ck, cv = q.clone(), k.clone(), v.clone()
        strided.rotate_(cq, ck)
        strided.rows_(cv)
        return _read_heads(cq.view(6, 2, 4)), _read(ck), cv.view(-1)

    out = run_pass(f, X, W, mode=mode, trials=3)
    assert out.check.ok, out.check.problems
    if mode == "fake":
        assert out.reasons == [decisions.STRIDED_VIEW_INVALID]


def _heads_after_rotary(x, w):
    """llama_block's pattern with a symbolic token count: q's head view is taken on the clone."""
    q, k, v = _qkv(x, w)
    cq, ck = q.clone(), k.clone()
    strided.rotate_(cq, ck)
    return _read_heads(cq.view(x.shape[0], 2, 4)), _read(ck), _read(v)


def test_symbolic_token_count_that_may_be_one_keeps_the_rule_and_adds_no_guard():
    """Under backed_size_oblivious (the harness's and vLLM's compiles) the head view of the
    strided q is valid for every token count: both clones go, and no size is guarded."""
    out = run_pass(_heads_after_rotary, X, W, mode="oblivious")
    assert out.check.ok, out.check.problems
    assert len(out.report.removed) == 2 and out.report.guards_added == ()


def test_a_reader_valid_only_for_some_sizes_keeps_its_clone():
    """Without the oblivious config, re-running q's head view on its strided layout asks whether
    the token count is 1, which would guard the graph on the answer: its clone stays
    (strided-unverified) and nothing is guarded; k (read by a matmul) still goes."""
    gm = trace(_heads_after_rotary, X, W, mode="oblivious")
    out = run_pass(gm, X, W)  # the pass runs outside the config the graph was traced under
    assert out.check.ok, out.check.problems
    assert out.reasons == [decisions.STRIDED_UNVERIFIED] and len(out.report.removed) == 1
    assert out.report.guards_added == ()


def test_non_overlap_and_column_facts():
    base = torch.empty(6, 16)
    q, v = base[:, :8], base[:, 12:]
    assert provably_non_overlapping(q) and provably_non_overlapping(base[:, ::2])
    assert not provably_non_overlapping(base[:, :1].expand(6, 4))
    assert disjoint_columns(q, v.view(6, 2, 1, 2).expand(6, 2, 2, 2))
    assert not disjoint_columns(q, base[:, 7:9])
    wraps = base.as_strided((5, 4), (16, 1), 14)  # columns 14..17: the last two are the next row's 0..1
    assert not disjoint_columns(base[:, :2], wraps)
    assert not disjoint_columns(q, base.t())


def test_rows_read_after_a_column_block_is_written_keep_its_clone():
    """Rows 1-4 of the projection share elements with its first 8 columns (torch's overlap helper
    says they do not): the column block's clone must stay when the rows are read afterwards."""
    def f(x, w):
        qkv = x @ w
        c = qkv[:, :8].clone()
        strided.rows_(c)
        later = qkv[1:5].clone()
        ops.scale_(later, 1.5)
        return _read(c), later

    out = run_pass(f, X, W)
    assert out.report.kept[0].clone == "clone" and out.report.kept[0].reason == decisions.SOURCE_READ_AFTER_WRITE
    assert out.check.ok, out.check.problems


def test_disjointness_proofs():
    base = torch.empty(6, 24)
    assert not disjoint_elements(base[1:5], base[:, :8])  # they share 32 elements
    assert disjoint_elements(base[:3], base[3:])  # address ranges
    assert disjoint_elements(base[:, ::2], base[:, 1::2])  # residues mod 2
    assert disjoint_elements(base[:, :8], base[:, 16:].reshape(6, 2, 4))  # column blocks
    assert not disjoint_elements(base[:, ::2], base[:, 2::4])
    assert disjoint_elements(base[:0], base)  # no elements


def test_any_layout_registration_is_checked():
    with pytest.raises(ValueError):
        cleanpass.register_any_layout(strided.dense_sum.default)
    with pytest.raises(ValueError):
        cleanpass.register_any_layout(strided.rows_.default, {"y": True})


def test_trace_keeps_the_pattern():
    """Guard: the traced graph still has the clones of split views these tests rely on."""
    def f(x, w):
        q, k, _ = _qkv(x, w)
        cq, ck = q.clone(), k.clone()
        strided.rotate_(cq, ck)
        return _read(cq), _read(ck)

    gm = trace(f, X, W)
    clones = [n for n in gm.graph.nodes if n.target is torch.ops.aten.clone.default]
    assert len(clones) == 2
    assert all(n.args[0].meta["val"].stride() == (16, 1) for n in clones)


def test_a_contiguous_copy_for_an_any_layout_kernel_goes():
    """`q.contiguous()` (a provider making dense rows for a kernel it does not know takes any) is a
    clone with contiguous_format: removed like a plain clone when every reader takes q's layout."""
    def f(x, w):
        q, k, v = _qkv(x, w)
        cq, ck = q.contiguous(), k.contiguous()
        strided.rotate_(cq, ck)
        return _read(cq), _read(ck), _read(v)

    out = run_pass(f, X, W)
    assert [d.reason for d in out.report.removed] == [decisions.REMOVED] * 2
    assert out.check.ok, out.check.problems


@pytest.mark.parametrize("reader, reason", [
    (lambda c: c.view(-1), decisions.STRIDED_VIEW_INVALID),       # row-major only
    (lambda c: strided.dense_sum(c), decisions.STRIDED_USER),  # may need it dense
])
def test_a_contiguous_copy_stays_where_a_reader_needs_its_layout(reader, reason):
    def f(x):
        c = x.t().contiguous()
        strided.rows_(c)
        return reader(c)

    out = run_pass(f, torch.randn(4, 8))
    assert out.report.removed == [] and [d.reason for d in out.report.kept] == [reason]
    assert out.check.ok, out.check.problems
