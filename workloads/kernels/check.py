"""Kernel correctness against the float64 reference: one routine for CPU and GPU.

Tests call ``check_kernels`` in-process on CUDA and, for Triton on CPU, run this module as a
subprocess with ``TRITON_INTERPRET=1`` (which must be set before triton is imported).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from workloads import numerics
from workloads.ir import OPS, Impl
from workloads.ir.samples import clone_args, sample_args


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
              device: Any) -> list[Problem]:
    """Compare one implementation with the reference; check it writes in place if it says so."""
    name = impl.provider if impl else "native"
    problems: list[Problem] = []

    def bad(what: str) -> None:
        problems.append(Problem(op_name, name, tokens, hidden, str(dtype).removeprefix("torch."), what))

    args = sample_args(op_name, tokens, hidden, dtype, device)
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


def check_kernels(device: Any, providers: Sequence[str], tokens: Sequence[int], hiddens: Sequence[int],
                  dtypes: Sequence[torch.dtype], ops: Sequence[str] | None = None) -> list[Problem]:
    """Every op x allowed provider that supports the sample args, over the given grid."""
    problems: list[Problem] = []
    for op_name in ops or sorted(OPS):
        op = OPS[op_name]
        for t in tokens:
            for h in hiddens:
                for dt in dtypes:
                    args = sample_args(op_name, t, h, dt, device)
                    for impl in [i for i in op.impls if i.provider in providers] + [None]:
                        if impl is not None and not impl.supports(*args):
                            problems.append(Problem(op_name, impl.provider, t, h, str(dt), "unsupported"))
                            continue
                        problems += check_one(op_name, impl, t, h, dt, device)
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
