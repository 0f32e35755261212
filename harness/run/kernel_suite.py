"""``--suite kernels``: every Triton kernel alone, on contiguous, strided and offset views.

Each (IR op, Triton implementation, layout, dtype, tokens, model width) becomes one result row:
``workload = kernel_<op>``, ``variant = triton_<inplace|out>_<layout>`` (``out``: a functional
kernel, or the out-of-place form of an in-place one writing fresh outputs), ``model_bytes`` from
the op's byte model (``IROp.bytes_moved``, the one model per op), so ``gbps`` and
``pct_of_peak`` (of the copy bandwidth measured in the same run) come out of the usual results
table and the gate can guard them.

Correctness first, on every device: outputs against the float64 reference, in-place kernels
must write their argument's storage, out-of-place forms must leave their inputs untouched and
write every element of their NaN-poisoned outputs, and nothing outside the view may change (each strided or
offset view sits inside a larger buffer whose padding is checked). On CUDA the kernel is then
timed alone (CUDA events, L2 flushed, inputs restored outside the timed region). On CPU the
kernels run in the Triton interpreter, which needs ``TRITON_INTERPRET=1`` before ``triton`` is
imported: ``run_rows`` then runs the grid in a child process. Interpreter timings mean
nothing, so CPU rows carry no latency and ``timer = "not_timed:triton_interpreter"``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from harness.run import timing
from harness.store.results import Row

log = logging.getLogger(__name__)

SUITE = "kernels"
LAYOUTS = ("contiguous", "strided", "offset")
NOT_TIMED = "not_timed:triton_interpreter"
PAD = 64  # extra elements per row around strided/offset views
SENTINEL = 7.0


@dataclass(frozen=True)
class Grid:
    """Token counts, dtypes and models (their hidden sizes) of one kernel run."""

    tokens: tuple[int, ...]
    dtypes: tuple[str, ...]
    models: tuple[str, ...]


#: a few representative shapes per kernel on a GPU; tiny ones for the CPU interpreter
GRIDS = {
    "cuda": Grid(tokens=(1, 16384), dtypes=("bfloat16", "float16", "float32"), models=("llama-3.1-8b",)),
    "cpu": Grid(tokens=(1, 5), dtypes=("float32",), models=("tiny-gqa",)),
}


def kernel_bytes(op: str, args: Sequence[Any]) -> int | None:
    """Fewest bytes one call must move (read + write): the IR op's byte model on ``args``."""
    from workloads.ir import OPS

    return OPS[op].bytes_moved(args) if op in OPS else None


@dataclass
class Placed:
    """A kernel's arguments laid out as asked, with the buffers that hold the views."""

    args: tuple
    buffers: list[tuple[torch.Tensor, torch.Tensor]]  # (buffer, view) pairs


def place(args: tuple, activations: Sequence[int], layout: str) -> Placed:
    """Copy the activation arguments into ``layout``: contiguous tensors, or views into padded
    buffers (``strided``: row stride > width; ``offset``: that plus a storage offset)."""
    out, buffers = list(args), []
    for i in activations:
        t = args[i]
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            continue
        if layout == "contiguous":
            out[i] = t.contiguous().clone()
            continue
        rows, width = t.shape
        buf = torch.full((rows, width + PAD), SENTINEL, dtype=t.dtype, device=t.device)
        start = PAD // 2 if layout == "offset" else 0
        view = buf[:, start:start + width]
        view.copy_(t)
        out[i] = view
        buffers.append((buf, view))
    return Placed(tuple(out), buffers)


def _outside(buf: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """The buffer's elements that are not part of the view (its padding)."""
    mask = torch.ones(buf.shape, dtype=torch.bool, device=buf.device)
    start = view.storage_offset() - buf.storage_offset()
    mask[:, start:start + view.shape[1]] = False
    return buf[mask]


def check_call(op_name: str, impl: Any, placed: Placed) -> tuple[list[str], float]:
    """Run once; return (problems, max abs error against the float64 reference)."""
    from workloads import numerics
    from workloads.ir import OPS
    from workloads.kernels.check import run_impl

    args = placed.args
    ref = OPS[op_name].reference(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])
    ref = ref if isinstance(ref, tuple) else (ref,)
    pads = [(buf, view, _outside(buf, view).clone()) for buf, view in placed.buffers]
    before = [a.clone() if isinstance(a, torch.Tensor) else None for a in args]
    ptrs = [a.data_ptr() if isinstance(a, torch.Tensor) else None for a in args]
    outs = run_impl(impl, op_name, args)
    problems, worst = [], 0.0
    for i, (o, r) in enumerate(zip(outs, ref)):
        err = float(numerics.max_abs_err(o.cpu(), r))
        worst = max(worst, err)
        if not numerics.allclose(o.cpu(), r, o.dtype):
            problems.append(f"output {i} max_abs_err {err:.3g}")
    if impl.inplace:
        problems += [f"output {i} not written in place" for i, p in enumerate(impl.outputs)
                     if outs[i].data_ptr() != ptrs[p]]
    else:
        problems += [f"input {i} written" for i, (a, b) in enumerate(zip(args, before))
                     if b is not None and not torch.equal(a, b)]
    problems += ["wrote outside its view" for buf, view, pad in pads if not torch.equal(_outside(buf, view), pad)]
    return problems, worst


def time_call_us(call: Callable[[], Any], restore: Callable[[], None], blocks: int = 5, reps: int = 20) -> list[float]:
    """Per-block medians of the kernel alone (CUDA events, L2 flushed, restore untimed)."""
    from harness.run.cuda_timing import L2Flusher, event_block

    flush = L2Flusher(torch.device("cuda", torch.cuda.current_device()))
    for _ in range(3):
        restore()
        call()
    return [event_block(call, restore, flush, reps) for _ in range(blocks)]


def _restore(placed: Placed, pristine: tuple) -> Callable[[], None]:
    pairs = [(a, p) for a, p in zip(placed.args, pristine) if isinstance(a, torch.Tensor)]

    def restore() -> None:
        for dst, src in pairs:
            dst.copy_(src)
    return restore


def triton_impls(op: Any) -> list[Any]:
    """The op's registered Triton implementations (in place or functional)."""
    return [i for i in op.impls if i.provider == "triton"]


@dataclass(frozen=True)
class OutOfPlaceCall:
    """An in-place kernel's out-of-place form, called like a functional kernel.

    Its outputs are allocated once per placed argument set and poisoned with NaN, so an
    element the kernel leaves unwritten fails the check; timing reuses them, so no allocation
    is timed.
    """

    impl: Any
    outs: tuple

    provider = "triton"
    inplace = False

    @classmethod
    def fresh(cls, impl: Any, args: tuple) -> "OutOfPlaceCall":
        outs = tuple(torch.full(args[p].shape, float("nan"), dtype=args[p].dtype, device=args[p].device)
                     for p in impl.writes)
        return cls(impl, outs)

    def kernel(self, *args: Any) -> tuple:
        self.impl.out_of_place(*args, *self.outs)
        return tuple(self.outs[self.impl.writes.index(p)] for p in self.impl.outputs)


def kernel_forms(op: Any) -> list[tuple[str, Any]]:
    """(form, impl) for every Triton kernel of ``op``: ``inplace`` and its out-of-place form
    ``out`` for in-place kernels, ``out`` for functional ones."""
    forms = []
    for impl in triton_impls(op):
        forms.append(("inplace" if impl.inplace else "out", impl))
        if impl.inplace and impl.out_of_place is not None:
            forms.append(("out", impl))
    return forms


def _callable_form(form: str, impl: Any, args: tuple) -> Any:
    """What ``run_impl`` calls for this form on these (placed) arguments."""
    return OutOfPlaceCall.fresh(impl, args) if form == "out" and impl.inplace else impl


def grid_rows(device: str, grid: Grid, device_name: str = "") -> tuple[list[Row], list[dict]]:
    """All rows of the grid on ``device`` (this process must be able to run Triton there)."""
    from workloads import dims
    from workloads.ir import OPS
    from workloads.ir.samples import sample_args
    from workloads.kernels.check import run_impl

    rows, samples = [], []
    for op_name in sorted(OPS):
        op = OPS[op_name]
        for form, impl in kernel_forms(op):
            for model in grid.models:
                hidden = dims.dims(model).hidden
                for dtype in grid.dtypes:
                    dt = getattr(torch, dtype)
                    for tokens in grid.tokens:
                        base = sample_args(op_name, tokens, hidden, dt, device)
                        for layout in LAYOUTS:
                            row = Row(workload=f"kernel_{op_name}", variant=f"triton_{form}_{layout}",
                                      dtype=dtype, num_tokens=tokens, hidden=hidden, model=model,
                                      device=device, device_name=device_name, suite=SUITE)
                            rows.append(row)
                            placed = place(base, op.activations, layout)
                            if not impl.supports(*placed.args):
                                row.skip(f"{impl.provider} does not support the {layout} layout")
                                continue
                            row.model_bytes = kernel_bytes(op_name, placed.args)
                            row.kernels = 1
                            try:
                                problems, err = check_call(op_name, _callable_form(form, impl, placed.args),
                                                           placed)
                            except Exception as e:  # noqa: BLE001
                                row.fail(f"run: {type(e).__name__}: {str(e)[:300]}")
                                continue
                            row.max_abs_err = err
                            row.numerics = "fail" if problems else "within_tolerance"
                            if problems:
                                row.fail("; ".join(problems))
                            if device != "cuda":
                                row.timer = NOT_TIMED
                                continue
                            placed = place(base, op.activations, layout)
                            call = _callable_form(form, impl, placed.args)
                            pristine = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in placed.args)
                            vals = time_call_us(lambda: run_impl(call, op_name, placed.args),
                                                _restore(placed, pristine))
                            q = timing.quantiles(vals)
                            row.latency_us_p20, row.latency_us_p50, row.latency_us_p80 = q.p20, q.p50, q.p80
                            row.block_count, row.reps, row.timer = len(vals), 20, "cuda_event"
                            samples += [dict(workload=row.workload, variant=row.variant, dtype=dtype,
                                             num_tokens=tokens, hidden=hidden, device=device,
                                             device_name=device_name, block=b, sample_us=v)
                                        for b, v in enumerate(vals)]
    return rows, samples


def run_rows(device: str, tokens: Sequence[int] | None = None, dtypes: Sequence[str] | None = None,
             device_name: str = "") -> tuple[list[Row], list[dict]]:
    """The kernel grid's rows; on CPU in a child process with the Triton interpreter on."""
    grid = GRIDS["cuda" if device == "cuda" else "cpu"]
    grid = dataclasses.replace(grid, tokens=tuple(tokens or grid.tokens), dtypes=tuple(dtypes or grid.dtypes))
    if device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return grid_rows(device, grid, device_name)
    return _interpreted(grid, device_name)


def _interpreted(grid: Grid, device_name: str) -> tuple[list[Row], list[dict]]:
    """Run ``grid_rows`` on CPU in ``python -c`` with ``TRITON_INTERPRET=1``; rows via JSON."""
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        code = ("import json, sys; from harness.run import kernel_suite as k; "
                "k.write_rows_json(sys.argv[1], k.Grid(**json.loads(sys.argv[2])), sys.argv[3])")
        env = dict(os.environ, TRITON_INTERPRET="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        proc = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(dataclasses.asdict(grid)),
                               device_name], env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"kernel suite under the Triton interpreter failed: {proc.stderr[-2000:]}")
        records = json.loads(out.read_text())
    floats = {f.name for f in dataclasses.fields(Row) if isinstance(f.default, float)}
    return [Row(**{k: (math.nan if v is None and k in floats else v) for k, v in r.items()})
            for r in records], []


def write_rows_json(path: str, grid: Grid, device_name: str = "") -> None:
    """Child-process entry: the CPU grid's rows as JSON (NaN as null)."""
    rows, _ = grid_rows("cpu", grid, device_name)
    records = [{k: (None if isinstance(v, float) and v != v else v) for k, v in dataclasses.asdict(r).items()}
               for r in rows]
    Path(path).write_text(json.dumps(records))

