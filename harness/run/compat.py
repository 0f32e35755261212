"""The one place the harness touches private torch APIs, each with a fallback.

torch 2.11 (GPU machines) and 2.13 (here) differ in private Inductor/Dynamo details; every
other harness module goes through these helpers so a moved API breaks one function, not a run.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import torch
from torch.utils._pytree import tree_leaves

__all__ = ["BytesCounter", "capture_generated_code", "count_inductor_bytes", "measurement_config",
           "reset_dynamo", "tree_leaves"]

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


class BytesCounter:
    """Holds Inductor's ``num_bytes_accessed`` for the graphs compiled inside ``count_bytes``."""

    value: int | None = None


@contextlib.contextmanager
def count_inductor_bytes() -> Iterator[BytesCounter]:
    """Enable Inductor's byte metrics quietly for the block and report what it counted.

    Inductor fills ``metrics.num_bytes_accessed`` only when the ``inductor_metrics`` artifact
    logger is enabled. Turning it on through ``torch._logging.set_logs`` prints every graph's
    metrics, so we enable just that logger, silenced; fallback: ``set_logs``.
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
        yield counter
    finally:
        end = int(getattr(metrics, "num_bytes_accessed", 0) or 0)
        counter.value = end - start
        if logger is not None and saved is not None:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers = saved[2]
            logger.disabled = saved[3]


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
def attribution_config(provenance: dict[str, list[str]]) -> Iterator[None]:
    """Compile for kernel attribution: C++ kernels visible to the profiler, provenance recorded.

    ``cpp.enable_kernel_profile`` wraps each generated C++ kernel in a profiler range.
    ``trace.provenance_tracking_level = 1`` makes Inductor map each generated kernel to the
    post-grad FX nodes fused into it, in module globals of ``torch._inductor.debug`` that it
    resets and restores around every compile (``reset_provenance_globals``); we wrap that reset
    to copy the map into ``provenance`` (kernel name without its ``:<handle>``) before it is
    restored. Either switch missing on this torch: attribution falls back to kernel names.
    """
    ind = torch._inductor.config
    with contextlib.ExitStack() as stack:
        if hasattr(ind, "cpp") and hasattr(ind.cpp, "enable_kernel_profile"):
            stack.enter_context(ind.patch({"cpp.enable_kernel_profile": True}))
        try:
            from torch._inductor import debug
        except Exception:  # pragma: no cover - layout changed
            debug = None
        original = getattr(debug, "reset_provenance_globals", None)
        if original is None or not hasattr(getattr(ind, "trace", None), "provenance_tracking_level"):
            log.warning("no Inductor provenance tracking on torch %s", torch.__version__)
            yield
            return
        stack.enter_context(ind.patch({"trace.provenance_tracking_level": 1}))

        @contextlib.contextmanager
        def recording() -> Iterator[None]:
            with original():
                try:
                    yield
                finally:
                    found = getattr(debug, "_inductor_triton_kernel_to_post_grad_node_info", {}) or {}
                    for kernel, nodes in found.items():
                        bucket = provenance.setdefault(str(kernel).split(":", 1)[0], [])
                        bucket += [n for n in nodes if n not in bucket]

        debug.reset_provenance_globals = recording
        try:
            yield
        finally:
            debug.reset_provenance_globals = original
