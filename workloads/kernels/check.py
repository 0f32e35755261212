"""Kernel correctness against the float64 reference: one routine for CPU and GPU.

Tests call ``check_kernels`` in-process on CUDA and, for Triton on CPU, run this module as a
subprocess with ``TRITON_INTERPRET=1`` (which must be set before triton is imported).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from workloads import numerics
from workloads.ir import OPS, Impl
from workloads.ir.samples import VARIANTS, clone_args, sample_args


@dataclass(frozen=True)
class Problem:
    op: str
    provider: str
    tokens: int
    hidden: int
    dtype: str
    what: str

    def __str__(self) -> str:
        return f"{self.op}/{self.provider} T={self.tokens} H={self.hidden} {self.dtype}: {self.what}"


def run_impl(impl: Impl | None, op_name: str, args: tuple) -> tuple[torch.Tensor, ...]:
    """Run one implementation the way the lowering would; return the op's outputs."""
    op = OPS[op_name]
    if impl is None:
        out = op.functional(*args)
    elif impl.inplace:
        impl.kernel(*args)
        return tuple(args[p] for p in impl.outputs)
    else:
        out = impl.kernel(*args)
    return out if isinstance(out, tuple) else (out,)


def check_one(op_name: str, impl: Impl | None, tokens: int, hidden: int, dtype: torch.dtype,
              device: Any, **variant: Any) -> list[Problem]:
    """Compare one implementation with the reference; check it writes in place if it says so."""
    name = impl.provider if impl else "native"
    problems: list[Problem] = []

    def bad(what: str) -> None:
        problems.append(Problem(op_name, name, tokens, hidden, str(dtype).removeprefix("torch."), what))

    args = sample_args(op_name, tokens, hidden, dtype, device, **variant)
    ref = OPS[op_name].reference(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])
    ref = ref if isinstance(ref, tuple) else (ref,)
    work = clone_args(args)
    ptrs = [a.data_ptr() if isinstance(a, torch.Tensor) else None for a in work]
    outs = run_impl(impl, op_name, work)
    for i, (o, r) in enumerate(zip(outs, ref)):
        if not numerics.allclose(o.cpu(), r, dtype):
            bad(f"output {i} max_abs_err {numerics.max_abs_err(o.cpu(), r):.3g}")
    if impl is not None and impl.inplace:
        for i, p in enumerate(impl.outputs):
            if outs[i].data_ptr() != ptrs[p]:
                bad(f"output {i} not written in place")
    else:
        for a, w in zip(args, work):
            if isinstance(a, torch.Tensor) and not torch.equal(a, w):
                bad("functional implementation mutated an input")
    return problems


# Input layouts the out-of-place forms are checked on: (name, make a view with t's values).
def _row_offset(t: torch.Tensor) -> torch.Tensor:
    """Rows padded by 7 elements and starting 3 in: other row stride, non-zero offset."""
    base = torch.full((t.shape[0], t.shape[1] + 7), float("nan"), dtype=t.dtype, device=t.device)
    view = base[:, 3:3 + t.shape[1]]
    view.copy_(t)
    return view


def _column_strided(t: torch.Tensor) -> torch.Tensor:
    """Every other column of a wider buffer: column stride 2."""
    base = torch.full((t.shape[0], 2 * t.shape[1]), float("nan"), dtype=t.dtype, device=t.device)
    view = base[:, 1::2]
    view.copy_(t)
    return view


LAYOUTS = {"contiguous": lambda t: t.clone(), "row-offset": _row_offset, "column-strided": _column_strided}


# (input layout, fresh output layout) pairs: each input layout once, each output layout once.
LAYOUT_PAIRS = (("contiguous", "row-offset"), ("row-offset", "contiguous"), ("column-strided", "column-strided"))


def _poisoned(t: torch.Tensor, layout: str) -> torch.Tensor:
    """A fresh output buffer in ``layout`` holding NaN (integers: a large value), so an element
    the kernel leaves unwritten shows up."""
    out = LAYOUTS[layout](t)
    out.fill_(float("nan") if out.is_floating_point() else 2 ** 30)
    return out


def check_out_of_place(op_name: str, impl: Impl, tokens: int, hidden: int, dtype: torch.dtype,
                       device: Any, **variant: Any) -> list[Problem]:
    """The out-of-place form of an in-place kernel, on every input layout and every subset of
    its mutated arguments given fresh (poisoned) outputs, the others updated in place:
    outputs match the reference, inputs with fresh outputs stay untouched."""
    problems: list[Problem] = []
    writes = impl.writes
    for layout, fresh_layout in LAYOUT_PAIRS:
        for fresh in itertools.product((False, True), repeat=len(writes)):
            if not any(fresh):  # all in place: check_one's case
                continue
            args = list(sample_args(op_name, tokens, hidden, dtype, device, **variant))
            ref = OPS[op_name].reference(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])
            ref = ref if isinstance(ref, tuple) else (ref,)
            for p in writes:
                if args[p].dim() == 2:
                    args[p] = LAYOUTS[layout](args[p])
            before = [args[p].clone() for p in writes]
            outs = [_poisoned(args[p], fresh_layout) if f else args[p] for p, f in zip(writes, fresh)]
            impl.out_of_place(*args, *outs)
            what = f"out of place, inputs {layout}, fresh {fresh} ({fresh_layout})"
            for i, p in enumerate(impl.outputs):
                o = outs[writes.index(p)]
                if not numerics.allclose(o.cpu(), ref[i], dtype):
                    problems.append(Problem(op_name, impl.provider, tokens, hidden, str(dtype),
                                            f"{what}: output {i} max_abs_err "
                                            f"{numerics.max_abs_err(o.cpu(), ref[i]):.3g}"))
            for p, f, b in zip(writes, fresh, before):
                if f and not torch.equal(args[p], b):
                    problems.append(Problem(op_name, impl.provider, tokens, hidden, str(dtype),
                                            f"{what}: input {p} written"))
    return problems


def _side_by_side(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Column blocks of one NaN-filled buffer, 3 columns apart (q, k of a fused qkv), with
    the tensors' values: every block strided and all but the first at an offset."""
    rows, gap = tensors[0].shape[0], 3
    width = gap + sum(t.shape[1] + gap for t in tensors)
    base = torch.full((rows, width), float("nan"), dtype=tensors[0].dtype, device=tensors[0].device)
    views, start = [], gap
    for t in tensors:
        view = base[:, start:start + t.shape[1]]
        view.copy_(t)
        views.append(view)
        start += t.shape[1] + gap
    return views


def _outside_untouched(views: list[torch.Tensor]) -> bool:
    """Every element of the views' bases that no view covers still holds NaN."""
    for base in {id(v._base): v._base for v in views}.values():
        outside = torch.ones(base.shape, dtype=torch.bool, device=base.device)
        for v in views:
            if v._base is base:
                outside.as_strided(v.shape, v.stride(), v.storage_offset()).fill_(False)
        if not bool(base[outside].isnan().all()):
            return False
    return True


# side by side: every block has the base's row stride and an offset; column-strided: column stride 2
IN_PLACE_LAYOUTS = ("side-by-side", "column-strided")


def check_in_place_layouts(op_name: str, impl: Impl, tokens: int, hidden: int, dtype: torch.dtype,
                           device: Any, **variant: Any) -> list[Problem]:
    """The in-place kernel on strided and offset views of larger NaN-filled buffers (what it
    receives when cleanpass removes the clone of a view): results match the reference in the
    views, written in place, and nothing outside the views is touched."""
    problems: list[Problem] = []
    for layout in IN_PLACE_LAYOUTS:
        args = list(sample_args(op_name, tokens, hidden, dtype, device, **variant))
        ref = OPS[op_name].reference(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])
        ref = ref if isinstance(ref, tuple) else (ref,)
        writes = [p for p in impl.writes if args[p].dim() == 2]
        if layout == "side-by-side":
            for p, view in zip(writes, _side_by_side([args[p] for p in writes])):
                args[p] = view
        else:
            for p in writes:
                args[p] = LAYOUTS[layout](args[p])
        views = [args[p] for p in writes]
        impl.kernel(*args)
        what = f"in place on {layout} views"
        for i, p in enumerate(impl.outputs):
            if not numerics.allclose(args[p].cpu(), ref[i], dtype):
                problems.append(Problem(op_name, impl.provider, tokens, hidden, str(dtype),
                                        f"{what}: output {i} max_abs_err "
                                        f"{numerics.max_abs_err(args[p].cpu(), ref[i]):.3g}"))
        if views and not _outside_untouched(views):
            problems.append(Problem(op_name, impl.provider, tokens, hidden, str(dtype),
                                    f"{what}: wrote outside the views"))
    return problems


def check_kernels(device: Any, providers: Sequence[str], tokens: Sequence[int], hiddens: Sequence[int],
                  dtypes: Sequence[torch.dtype], ops: Sequence[str] | None = None,
                  out_of_place: bool = True) -> list[Problem]:
    """Every op x allowed provider that supports the sample args, over the given grid; in-place
    kernels that take any layout also on strided and offset views (``check_in_place_layouts``);
    with ``out_of_place`` also the out-of-place forms (``check_out_of_place``)."""
    problems: list[Problem] = []
    for op_name in ops or sorted(OPS):
        for t in tokens:
            for h in hiddens:
                for dt in dtypes:
                    for variant in [{}] + VARIANTS.get(op_name, []):
                        problems += _check_point(op_name, t, h, dt, device, providers, variant,
                                                 out_of_place)
    return problems


def _check_point(op_name: str, t: int, h: int, dt: torch.dtype, device: Any, providers: Sequence[str],
                 variant: dict[str, Any], out_of_place: bool) -> list[Problem]:
    problems: list[Problem] = []
    args = sample_args(op_name, t, h, dt, device, **variant)
    for impl in [i for i in OPS[op_name].impls if i.provider in providers] + [None]:
        if impl is not None and not impl.supports(*args):
            problems.append(Problem(op_name, impl.provider, t, h, str(dt), f"unsupported {variant}"))
            continue
        problems += check_one(op_name, impl, t, h, dt, device, **variant)
        if impl is not None and impl.inplace and impl.any_layout:
            problems += check_in_place_layouts(op_name, impl, t, h, dt, device, **variant)
        if out_of_place and impl is not None and impl.out_of_place is not None:
            problems += check_out_of_place(op_name, impl, t, h, dt, device, **variant)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print problems as JSON lines; exit 1 if any."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--providers", default="triton")
    p.add_argument("--tokens", default="1,17")
    p.add_argument("--hidden", default="256")
    p.add_argument("--dtypes", default="float32")
    a = p.parse_args(argv)
    problems = check_kernels(
        a.device, a.providers.split(","), [int(x) for x in a.tokens.split(",")],
        [int(x) for x in a.hidden.split(",")], [getattr(torch, d) for d in a.dtypes.split(",")])
    for pr in problems:
        sys.stdout.write(json.dumps(str(pr)) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
