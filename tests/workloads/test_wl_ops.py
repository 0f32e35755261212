"""Each IR op: every CPU implementation against the float64 reference, in-place really in
place, functional overloads pure, opcheck clean."""
from __future__ import annotations

import pytest
import torch

from workloads.ir import OPS
from workloads.ir.samples import clone_args, sample_args
from workloads.kernels.check import check_kernels

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
OP_NAMES = sorted(OPS)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", OP_NAMES)
def test_cpu_implementations_match_reference(op: str, dtype: torch.dtype) -> None:
    """torch-written kernels and the native definition, over a CPU-sized slice of the grid."""
    problems = check_kernels("cpu", ["torch"], tokens=[1, 17, 128], hiddens=[2048, 5120],
                             dtypes=[dtype], ops=[op], out_of_place=False)
    assert problems == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", OP_NAMES)
def test_out_of_place_forms_match_reference(op: str, dtype: torch.dtype) -> None:
    """Each in-place kernel's out-of-place form on contiguous, row-offset and column-strided
    inputs, every mix of in-place and fresh (NaN-poisoned) outputs: matches the reference,
    leaves the inputs it does not write untouched, writes every element."""
    assert check_kernels("cpu", ["torch"], tokens=[1, 17], hiddens=[2048], dtypes=[dtype], ops=[op]) == []


def test_cpu_real_hidden_8192_and_odd_tokens() -> None:
    assert check_kernels("cpu", ["torch"], tokens=[3, 33], hiddens=[8192], dtypes=[torch.bfloat16],
                         out_of_place=False) == []


def test_rotary_gptj_style_matches_reference() -> None:
    impl = next(i for i in OPS["rotary_embedding"].impls if i.provider == "torch")
    args = sample_args("rotary_embedding", 9, 512, torch.float32, is_neox=False)
    ref = OPS["rotary_embedding"].reference(*args)
    work = clone_args(args)
    impl.kernel(*work)
    for out, r in zip((work[1], work[2]), ref):
        torch.testing.assert_close(out.double(), r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op", OP_NAMES)
def test_inplace_implementations_write_in_place(op: str) -> None:
    for impl in [i for i in OPS[op].impls if i.inplace and i.provider == "torch"]:
        args = clone_args(sample_args(op, 5, 256, torch.float32))
        before = {p: (args[p].data_ptr(), args[p].clone()) for p in impl.writes}
        impl.kernel(*args)
        for p, (ptr, old) in before.items():
            assert args[p].data_ptr() == ptr
            assert not torch.equal(args[p], old), f"{op}: argument {p} not written"


def test_rotary_writes_through_qkv_views_and_leaves_v() -> None:
    """q and k are split views of one qkv: the in-place kernel changes qkv, never v."""
    impl = next(i for i in OPS["rotary_embedding"].impls if i.provider == "torch")
    pos, q, k, cache, hs, neox = sample_args("rotary_embedding", 6, 512, torch.float32)
    qkv = q._base
    v_before = qkv[:, q.shape[1] + k.shape[1]:].clone()
    qkv_before = qkv.clone()
    impl.kernel(pos, q, k, cache, hs, neox)
    assert not torch.equal(qkv, qkv_before)
    assert torch.equal(qkv[:, q.shape[1] + k.shape[1]:], v_before)


@pytest.mark.parametrize("overload", ["functional", "maybe_inplace"])
@pytest.mark.parametrize("op", OP_NAMES)
def test_ir_overloads_never_mutate_inputs(op: str, overload: str) -> None:
    args = sample_args(op, 7, 256, torch.float32)
    keep = clone_args(args)
    outs = getattr(OPS[op], overload)(*args)
    for a, b in zip(args, keep):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    for o in outs if isinstance(outs, tuple) else (outs,):
        assert all(o.untyped_storage().data_ptr() != a.untyped_storage().data_ptr()
                   for a in args if isinstance(a, torch.Tensor))


@pytest.mark.parametrize("overload", ["functional", "maybe_inplace"])
@pytest.mark.parametrize("op", OP_NAMES)
def test_opcheck_ir_ops(op: str, overload: str) -> None:
    torch.library.opcheck(getattr(OPS[op], overload), sample_args(op, 5, 256, torch.float32))


@pytest.mark.parametrize("op", OP_NAMES)
def test_opcheck_kernel_ops(op: str) -> None:
    """The CPU provider ops (mutable ``Tensor(a!)`` schemas for in-place ones)."""
    for impl in [i for i in OPS[op].impls if i.provider == "torch"]:
        torch.library.opcheck(impl.kernel, clone_args(sample_args(op, 5, 256, torch.float32)))


def test_provider_choice_by_priority() -> None:
    """On CPU without the interpreter Triton declines; a provider filter is honoured."""
    op = OPS["rms_norm"]
    args = sample_args("rms_norm", 4, 256, torch.float32)
    assert op.providers() == ["triton", "torch", "native"]
    assert op.choose(args).provider == "torch"
    assert op.choose(args, providers=()) is None
    assert op.choose(args, providers=("triton",)) is None


def test_in_place_layout_check_catches_lost_and_stray_writes() -> None:
    """check_in_place_layouts (strided/offset views of NaN-filled buffers) flags a kernel that
    writes a dense copy of its argument, and one that writes outside the view."""
    import dataclasses

    from workloads.kernels.check import check_in_place_layouts

    impl = next(i for i in OPS["rms_norm"].impls if i.provider == "torch")

    def into_a_copy(x, weight, eps):  # noqa: ANN001, ANN202
        x.contiguous().mul_(0.0)

    def past_the_view(x, weight, eps):  # noqa: ANN001, ANN202
        impl.kernel(x, weight, eps)
        x._base[:, 0] = 1.0

    assert check_in_place_layouts("rms_norm", impl, 4, 256, torch.float32, "cpu") == []
    lost = check_in_place_layouts("rms_norm", dataclasses.replace(impl, kernel=into_a_copy), 4, 256,
                                  torch.float32, "cpu")
    stray = check_in_place_layouts("rms_norm", dataclasses.replace(impl, kernel=past_the_view), 4, 256,
                                   torch.float32, "cpu")
    assert lost and all("max_abs_err" in p.what for p in lost)
    assert stray and all("outside the views" in p.what for p in stray)
