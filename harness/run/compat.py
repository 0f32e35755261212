"""The one place the harness touches private torch APIs, each with a fallback.

torch 2.11 (GPU machines) and 2.13 (here) differ in private Inductor/Dynamo details; every
other harness module goes through these helpers so a moved API breaks one function, not a run.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode  # exact bytes of eager variants
from torch.utils._pytree import tree_leaves

__all__ = ["BytesCounter", "SchedulerKernel", "attribution_config", "capture_compiled_modules",
           "capture_generated_code", "poisoned_wrapper_allocations", "TorchDispatchMode", "count_inductor_bytes",
           "measurement_config", "record_provenance", "reset_dynamo", "tree_leaves"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def capture_generated_code(sink: list[str]) -> Iterator[None]:
    """Append the wrapper code of every graph Inductor compiles inside the block to ``sink``.

    ``torch._inductor.utils.run_and_get_code`` does the same but calls ``torch._dynamo.reset()``
    first, which would throw away the compile we reuse across token counts; so we patch the
    same hook (``GraphLowering.save_output_code``) ourselves and fall back to nothing.
    """
    try:
        from torch._inductor.graph import GraphLowering
    except Exception:  # pragma: no cover - layout changed
        log.warning("cannot capture Inductor code on torch %s", torch.__version__)
        yield
        return
    missing = object()
    previous = GraphLowering.__dict__.get("save_output_code", missing)  # None is a real value

    def _save(code: str, *rest: Any) -> None:
        sink.append(code)

    GraphLowering.save_output_code = staticmethod(_save)  # type: ignore[assignment]
    try:
        yield
    finally:
        if previous is missing:
            try:
                delattr(GraphLowering, "save_output_code")
            except AttributeError:
                pass
        else:
            GraphLowering.save_output_code = previous  # type: ignore[assignment]


@contextlib.contextmanager
def capture_compiled_modules(sink: list[ModuleType]) -> Iterator[None]:
    """Append every Python module Inductor loads inside the block to ``sink`` (the generated
    wrappers whose ``call`` allocates the graph's buffers).

    We wrap ``PyCodeCache.load_by_key_path``, which loads each wrapper (a module whose source was
    loaded before comes back from its cache, and is recorded too); fallback: nothing recorded,
    so the compiled code's allocations go unpoisoned.
    """
    try:
        from torch._inductor.codecache import PyCodeCache
    except Exception:  # pragma: no cover - layout changed
        yield
        return
    original = PyCodeCache.__dict__.get("load_by_key_path")
    if original is None:  # pragma: no cover - renamed
        log.warning("PyCodeCache.load_by_key_path missing on torch %s: compiled allocations unpoisoned",
                    torch.__version__)
        yield
        return
    load = PyCodeCache.load_by_key_path

    def load_by_key_path(cls: Any, *args: Any, **kwargs: Any) -> Any:
        module = load(*args, **kwargs)
        sink.append(module)
        return module

    PyCodeCache.load_by_key_path = classmethod(load_by_key_path)  # type: ignore[assignment]
    try:
        yield
    finally:
        PyCodeCache.load_by_key_path = original  # type: ignore[assignment]


#: Names Inductor's generated wrappers bind their buffer allocators to (module globals).
WRAPPER_ALLOCATORS = ("empty_strided_cpu", "empty_strided_cuda", "empty_strided_xpu", "empty_strided_mtia",
                      "empty_strided_cpu_pinned", "empty_strided")


@contextlib.contextmanager
def poisoned_wrapper_allocations(modules: Sequence[ModuleType],
                                 poison: Callable[[torch.Tensor], Any]) -> Iterator[int]:
    """Inside the block, every buffer the generated wrappers in ``modules`` allocate comes back
    passed through ``poison``; yields how many allocators were wrapped.

    Inductor's wrappers allocate with ``torch._C._dynamo.guards._empty_strided_<device>``, bound
    to module globals; that fast path bypasses ``torch.utils.deterministic.
    fill_uninitialized_memory`` (checked on torch 2.13), and a dispatch mode would make Dynamo
    run the function uncompiled. So we rebind those globals for the block and restore them
    after: the timed calls run the original allocators.
    """
    patched: list[tuple[ModuleType, str, Any]] = []
    seen: set[int] = set()
    for module in modules:
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name in WRAPPER_ALLOCATORS:
            allocate = module.__dict__.get(name)
            if allocate is None:
                continue
            setattr(module, name, _poisoning(allocate, poison))
            patched.append((module, name, allocate))
    try:
        yield len(patched)
    finally:
        for module, name, allocate in reversed(patched):
            setattr(module, name, allocate)


def _poisoning(allocate: Callable[..., torch.Tensor], poison: Callable[[torch.Tensor], Any]
               ) -> Callable[..., torch.Tensor]:
    def allocate_poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = allocate(*args, **kwargs)
        if out.numel():
            poison(out)
        return out
    return allocate_poisoned


@dataclass(frozen=True)
class SchedulerKernel:
    """One node of Inductor's scheduler, as its byte counter saw it.

    ``inductor_bytes``: what Inductor charged it (``get_read_write_buffers_sizes``). For a
    fallback kernel (an op Inductor calls as it is), ``target`` is the op and ``args``/``kwargs``
    its arguments in schema order, each tensor argument as a meta tensor with the size and
    strides of the view the kernel is handed, and ``outputs`` the tensors it returns, at the
    compile's size hints; ``args`` is None when they could not be read.
    """

    name: str
    inductor_bytes: int
    target: Any = None
    args: tuple | None = ()
    kwargs: Any = None
    outputs: tuple = ()


class BytesCounter:
    """What Inductor counted for the graphs compiled inside ``count_inductor_bytes``.

    ``value``: the sum of ``num_bytes_accessed``. ``graphs``: per compiled graph, its scheduler
    nodes (``SchedulerKernel``), or None where they could not be read on this torch.
    """

    def __init__(self) -> None:
        self.value: int | None = None
        self.graphs: list[list[SchedulerKernel] | None] = []


@contextlib.contextmanager
def count_inductor_bytes() -> Iterator[BytesCounter]:
    """Enable Inductor's byte metrics quietly for the block and report what it counted.

    Inductor fills ``metrics.num_bytes_accessed`` only when the ``inductor_metrics`` artifact
    logger is enabled. Turning it on through ``torch._logging.set_logs`` prints every graph's
    metrics, so we enable just that logger, silenced; fallback: ``set_logs``. While it is on,
    Inductor calls ``GraphLowering.count_bytes`` once per graph; we wrap it to also record the
    scheduler's nodes (``BytesCounter.graphs``).
    """
    counter = BytesCounter()
    try:
        from torch._inductor import metrics
    except Exception:  # pragma: no cover
        yield counter
        return
    logger = _metrics_logger()
    saved = None
    if logger is not None:
        saved = (logger.level, logger.propagate, list(logger.handlers), logger.disabled)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.disabled = False
        logger.handlers = [logging.NullHandler()]
    else:  # pragma: no cover - fallback for a moved logger
        try:
            torch._logging.set_logs(inductor_metrics=True)
        except Exception:
            pass
    start = int(getattr(metrics, "num_bytes_accessed", 0) or 0)
    try:
        with _recording_scheduler_nodes(counter.graphs):
            yield counter
    finally:
        end = int(getattr(metrics, "num_bytes_accessed", 0) or 0)
        counter.value = end - start
        if logger is not None and saved is not None:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers = saved[2]
            logger.disabled = saved[3]


@contextlib.contextmanager
def _recording_scheduler_nodes(sink: list[list[SchedulerKernel] | None]) -> Iterator[None]:
    """Wrap ``GraphLowering.count_bytes`` to append each graph's scheduler nodes to ``sink``."""
    try:
        from torch._inductor.graph import GraphLowering
    except Exception:  # pragma: no cover - layout changed
        yield
        return
    original = GraphLowering.__dict__.get("count_bytes")
    if original is None:  # pragma: no cover - renamed: no per-kernel records
        log.warning("GraphLowering.count_bytes missing on torch %s: no exact bytes", torch.__version__)
        yield
        return

    def count_bytes(graph: Any) -> Any:
        result = original(graph)
        try:
            sink.append([_scheduler_kernel(graph, node) for node in graph.scheduler.nodes])
        except Exception:  # noqa: BLE001 - a moved private detail costs the exact count only
            log.warning("cannot read Inductor's scheduler nodes on torch %s", torch.__version__,
                        exc_info=True)
            sink.append(None)
        return result

    GraphLowering.count_bytes = count_bytes  # type: ignore[assignment]
    try:
        yield
    finally:
        GraphLowering.count_bytes = original  # type: ignore[assignment]


def _scheduler_kernel(graph: Any, node: Any) -> SchedulerKernel:
    ir_node = getattr(node, "node", None)
    target = getattr(ir_node, "op_overload", None)
    unflatten = getattr(ir_node, "unflatten_args", None)
    name = str(node.get_name())
    counted = int(node.get_read_write_buffers_sizes())
    if target is None or unflatten is None:
        return SchedulerKernel(name, counted)
    try:
        args, kwargs = unflatten(ir_node.inputs, ir_node.constant_args)
        meta = functools.partial(_as_meta, graph.sizevars)
        outputs = tree_leaves(_tree_map_ir(meta, list(getattr(ir_node, "outputs", None) or [])))
        return SchedulerKernel(name, counted, target, tuple(_tree_map_ir(meta, a) for a in args),
                               {k: _tree_map_ir(meta, v) for k, v in (kwargs or {}).items()},
                               tuple(t for t in outputs if isinstance(t, torch.Tensor)))
    except Exception:  # noqa: BLE001 - an argument kind we cannot size (e.g. an opaque object)
        log.debug("cannot read the arguments of %s (%s)", name, target, exc_info=True)
        return SchedulerKernel(name, counted, target, None)


def _tree_map_ir(fn: Any, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_tree_map_ir(fn, v) for v in value)
    return fn(value) if hasattr(value, "get_size") and hasattr(value, "get_dtype") else value


def _as_meta(sizevars: Any, ir_node: Any) -> torch.Tensor:
    """A meta tensor with the IR tensor's sizes and strides at the compile's size hints."""
    size = [_hint(sizevars, s) for s in ir_node.get_size()]
    stride = [_hint(sizevars, s) for s in ir_node.get_stride()]
    return torch.empty_strided(size, stride, dtype=ir_node.get_dtype(), device="meta")


def _hint(sizevars: Any, expr: Any) -> int:
    """A size expression's value at the compile's hints (``optimization_hint`` on torch 2.13,
    ``size_hint`` before)."""
    for name in ("optimization_hint", "size_hint"):
        method = getattr(sizevars, name, None)
        if method is not None:
            return int(method(expr, fallback=0))
    return int(expr)  # pragma: no cover


def _metrics_logger() -> logging.Logger | None:
    try:
        from torch._inductor import compile_fx
    except Exception:  # pragma: no cover
        return None
    logger = getattr(compile_fx, "inductor_metrics_log", None)
    return logger if isinstance(logger, logging.Logger) else None


def measurement_config() -> contextlib.ExitStack:
    """Config for measurement runs: FX graph cache off, room for many compiles of one function.

    All variants, dtypes and hidden sizes of a workload compile the same Python code object, so
    Dynamo's per-code recompile limit (8) would silently fall back to eager; raise it, and make
    hitting it an error where the flag exists.
    """
    stack = contextlib.ExitStack()
    ind = torch._inductor.config
    for key, value in (("fx_graph_cache", False), ("autotune_local_cache", False)):
        if hasattr(ind, key):
            stack.enter_context(ind.patch({key: value}))
    # we capture CUDA graphs ourselves; Inductor's own would copy inputs into static buffers
    # and hide writes to donated inputs (docs/timing.md)
    if hasattr(ind, "triton") and hasattr(ind.triton, "cudagraphs"):
        stack.enter_context(ind.patch({"triton.cudagraphs": False}))
    dyn = torch._dynamo.config
    # newer names first; the old ones are aliases of them where both exist
    limits = (("recompile_limit", "cache_size_limit", 4096),
              ("accumulated_recompile_limit", "accumulated_cache_size_limit", 65536))
    for new_key, old_key, value in limits:
        key = new_key if hasattr(dyn, new_key) else old_key
        if hasattr(dyn, key):
            stack.enter_context(dyn.patch({key: value}))
    if hasattr(dyn, "fail_on_recompile_limit_hit"):
        stack.enter_context(dyn.patch({"fail_on_recompile_limit_hit": True}))
    # Let the graph compiled at tokens=N>1 serve tokens=1 too (no 0/1 specialisation guard);
    # without the flag (older torch) tokens=1 simply recompiles.
    try:
        import torch.fx.experimental._config as fx_config

        if hasattr(fx_config, "backed_size_oblivious"):
            stack.enter_context(fx_config.patch(backed_size_oblivious=True))
    except Exception:  # pragma: no cover
        log.debug("backed_size_oblivious not available")
    return stack


def reset_dynamo() -> None:
    """Drop Dynamo's compiled-code caches (``torch._dynamo.reset``); a failure only costs memory."""
    try:
        torch._dynamo.reset()
    except Exception:  # noqa: BLE001
        log.debug("torch._dynamo.reset failed", exc_info=True)


@contextlib.contextmanager
def record_provenance(on_compile: Callable[[dict[str, list[str]]], None]) -> Iterator[bool]:
    """Record Inductor's provenance inside the block; yields whether this torch can.

    ``trace.provenance_tracking_level = 1`` makes Inductor map each kernel it emits
    (``<kernel>:<debug handle>``, the handle also written as a comment above the launch in the
    wrapper) to the post-grad FX nodes it came from, in module globals of
    ``torch._inductor.debug`` that it resets and restores around every compile
    (``reset_provenance_globals``). We wrap that reset and hand ``on_compile`` a copy of the map
    before it is restored: one call per compile, after its wrapper code was written.
    """
    ind = torch._inductor.config
    try:
        from torch._inductor import debug
    except Exception:  # pragma: no cover - layout changed
        debug = None
    original = getattr(debug, "reset_provenance_globals", None)
    if original is None or not hasattr(getattr(ind, "trace", None), "provenance_tracking_level"):
        log.warning("no Inductor provenance tracking on torch %s", torch.__version__)
        yield False
        return

    @contextlib.contextmanager
    def recording() -> Iterator[None]:
        with original():
            try:
                yield
            finally:
                found = getattr(debug, "_inductor_triton_kernel_to_post_grad_node_info", {}) or {}
                on_compile({str(k): list(v) for k, v in found.items()})

    with ind.patch({"trace.provenance_tracking_level": 1}):
        debug.reset_provenance_globals = recording
        try:
            yield True
        finally:
            debug.reset_provenance_globals = original


@contextlib.contextmanager
def attribution_config(provenance: dict[str, list[str]]) -> Iterator[None]:
    """Compile for kernel attribution: C++ kernels visible to the profiler, provenance recorded.

    ``cpp.enable_kernel_profile`` wraps each generated C++ kernel in a profiler range;
    ``provenance`` gets each kernel's post-grad FX nodes (``record_provenance``), keyed by the
    kernel name without its ``:<handle>``. Either switch missing on this torch: attribution
    falls back to kernel names.
    """
    ind = torch._inductor.config

    def merge(found: dict[str, list[str]]) -> None:
        for kernel, nodes in found.items():
            bucket = provenance.setdefault(kernel.split(":", 1)[0], [])
            bucket += [n for n in nodes if n not in bucket]

    with contextlib.ExitStack() as stack:
        if hasattr(ind, "cpp") and hasattr(ind.cpp, "enable_kernel_profile"):
            stack.enter_context(ind.patch({"cpp.enable_kernel_profile": True}))
        stack.enter_context(record_provenance(merge))
        yield
