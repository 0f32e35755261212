"""``python -m cleanpass explain MODULE:NAME --inputs 8x64 ...``: the pass on your own program.

NAME is a function, an ``nn.Module`` instance, or an ``nn.Module`` class (made with no
arguments). Each ``--inputs`` item is a shape ``8x64`` with an optional dtype (``8x64:bfloat16``):
floating inputs are seeded random normals, integer ones count up (``8:int64`` is 0..7, e.g.
positions). ``--lower MODULE:NAME`` picks the lowering that makes the clones (default: none,
Inductor's own post-grad graph; ``workloads.explain:lower`` is this project's IR lowering).
Prints the table of ``cleanpass.explain``; exit 1 when the differential check finds a difference.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

import torch

from . import explain as explaining


def _resolve(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"{spec!r}: expected MODULE:NAME")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def make_input(spec: str, generator: torch.Generator) -> torch.Tensor:
    """``8x64`` or ``8x64:bfloat16``: random normals; an integer dtype counts up from 0."""
    shape_text, _, dtype_text = spec.partition(":")
    dtype = getattr(torch, dtype_text or "float32", None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{spec!r}: unknown dtype {dtype_text!r}")
    shape = tuple(int(s) for s in shape_text.lower().split("x") if s)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=generator).to(dtype)
    return torch.arange(int(torch.Size(shape).numel())).reshape(shape).to(dtype)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cleanpass", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="every clone of your program: decision, reason, bytes saved")
    p.add_argument("target", metavar="MODULE:NAME")
    p.add_argument("--inputs", nargs="*", default=[], metavar="SHAPE[:DTYPE]")
    p.add_argument("--lower", metavar="MODULE:NAME", help="the lowering (a cleanpass.explain.Lower)")
    p.add_argument("--policy", default="sound", choices=("sound", "vllm"))
    p.add_argument("--no-fold", action="store_true", help="elimination alone")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        target = _resolve(args.target)
        if isinstance(target, type) and issubclass(target, torch.nn.Module):
            target = target()
        lower = _resolve(args.lower) if args.lower else explaining.capture
        generator = torch.Generator().manual_seed(args.seed)
        inputs = [make_input(spec, generator) for spec in args.inputs]
    except (ValueError, ImportError, AttributeError) as error:
        print(f"cleanpass explain: {error}", file=sys.stderr)
        return 2
    result = explaining.explain(target, *inputs, lower=lower, policy=args.policy, fold=not args.no_fold)
    print(result.table() if result.rows or result.checks else "no graph reached the pass")
    return 0 if result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
