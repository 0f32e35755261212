"""Where a compiled call spends its time: kernel time per class (copy, ir, matmul, attention, other).

Two halves, so the rules can be tested without a device:

- *classification* (pure): a kernel's name, plus Inductor's provenance map (generated kernel ->
  the post-grad FX nodes fused into it), gives the share of its time each class gets. A
  generated kernel is split evenly over the classes of the nodes it fused (views do no work and
  are left out), so a clone fused into a norm still charges half that kernel to copies.
  Without provenance, the node names come from the kernel's own name (``..._fused_add_clone_0``).
- *collection*: ``torch.profiler`` around single calls. On CUDA the device kernel events are
  used; on CPU the kernels are the outermost profiler events below the compiled-graph wrappers
  (Inductor's generated C++ kernels appear there only when compiled with
  ``cpp.enable_kernel_profile``; see ``compat.attribution_config``).

``peak_call_bytes`` is the device memory one call needs on top of what is allocated before it
(the caching allocator's peak). CPU has no allocator statistics: it returns None there.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from harness.store.results import KERNEL_CLASSES

_COPY = re.compile(r"clone|copy|contiguous|memcpy", re.IGNORECASE)
_IR = re.compile(r"cleanpass|rms_norm_rows|_silu_and_mul|_rotary", re.IGNORECASE)
_ATTENTION = re.compile(r"attention|sdpa|flash|fmha", re.IGNORECASE)
_MATMUL = re.compile(r"(^|[^a-z])(mm|addmm|bmm|matmul|linear|baddbmm)([^a-z]|$)|gemm|cutlass|cublas|xmma|"
                     r"sm\d+_", re.IGNORECASE)
_VIEW_NODES = {"view", "reshape", "permute", "getitem", "slice", "as_strided", "select", "expand",
               "unsqueeze", "squeeze", "transpose", "t", "split", "unbind", "alias",
               "reinterpret_tensor", "_unsafe_view", "split_with_sizes"}
# profiler events that wrap a compiled call rather than do work: their children are the kernels
_WRAPPERS = re.compile(r"^(## |Torch-Compiled Region|TorchDynamo|Pregraph bytecode|AOTDispatcher|"
                       r"CompiledFunction|ProfilerStep|cleanpass_call)")
_GENERATED = re.compile(r"^(?:graph_\d+_)?((?:cpp|triton)_\w*?fused_\w+?)(?::\d+)?$")


def name_class(name: str) -> str:
    """The class of one kernel or FX node name (no provenance)."""
    if _COPY.search(name):
        return "copy"
    if _IR.search(name):
        return "ir"
    if _ATTENTION.search(name):
        return "attention"
    if _MATMUL.search(name):
        return "matmul"
    return "other"


def _node_base(node: str) -> str:
    """``clone_3`` -> ``clone``; ``rms_norm_torch__default_1`` keeps its op part."""
    return re.sub(r"(_\d+)+$", "", node)


def generated_key(name: str) -> str | None:
    """The provenance key of an Inductor-generated kernel name, or None for other kernels.

    Profiler names of C++ kernels carry a ``graph_<n>_`` prefix; provenance keys carry a
    ``:<handle>`` suffix; both are dropped.
    """
    m = _GENERATED.match(name.strip())
    return m.group(1) if m else None


def node_classes(nodes: Iterable[str]) -> list[str]:
    """Classes of the working (non-view) nodes in a fused kernel."""
    return [name_class(n) for n in nodes if _node_base(n) not in _VIEW_NODES]


def kernel_shares(name: str, provenance: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """Fraction of one kernel's time each class gets (fractions sum to 1)."""
    key = generated_key(name)
    classes: list[str] = []
    if key is not None:
        nodes = (provenance or {}).get(key)
        if nodes:
            classes = node_classes(nodes)
        if not classes:  # no provenance: the fused op names are in the kernel's own name
            tail = re.sub(r"_\d+$", "", key.split("fused_", 1)[1])
            classes = [name_class(tok) for tok in tail.split("_") if tok and tok not in _VIEW_NODES]
    if not classes:
        classes = [name_class(name)]
    counts = Counter(classes)
    return {c: n / len(classes) for c, n in counts.items()}


@dataclass(frozen=True)
class KernelEvent:
    """One kernel launch seen by the profiler (``us``: its time)."""

    name: str
    us: float


def attribute(events: Iterable[KernelEvent], provenance: Mapping[str, Sequence[str]] | None,
              calls: int = 1) -> dict[str, tuple[float, float]]:
    """Per class: (microseconds per call, kernel launches per call), every class present.

    A fused kernel counts as a fraction of a launch in each of its classes, so launches sum to
    the real launch count.
    """
    us = dict.fromkeys(KERNEL_CLASSES, 0.0)
    launches = dict.fromkeys(KERNEL_CLASSES, 0.0)
    for ev in events:
        for cls, share in kernel_shares(ev.name, provenance).items():
            us[cls] += share * ev.us
            launches[cls] += share
    n = max(int(calls), 1)
    return {c: (us[c] / n, launches[c] / n) for c in KERNEL_CLASSES}


# ---- collection ------------------------------------------------------------------------

def _device_us(ev: Any) -> float:
    """A device kernel's own duration (its time range; the totals as fallbacks)."""
    span = getattr(ev, "time_range", None)
    if span is not None and hasattr(span, "elapsed_us"):
        return float(span.elapsed_us())
    for attr in ("device_time_total", "cuda_time_total", "device_time", "cuda_time"):
        v = getattr(ev, attr, None)
        if v is not None:
            return float(v)
    return 0.0


def _is_device_event(ev: Any) -> bool:
    kind = getattr(ev, "device_type", None)
    return kind is not None and getattr(kind, "name", str(kind)).upper().endswith("CUDA")


def cpu_kernel_events(events: Sequence[Any]) -> list[KernelEvent]:
    """The outermost working events: roots, or children of wrapper events (descended into)."""
    out: list[KernelEvent] = []

    def visit(ev: Any) -> None:
        if _WRAPPERS.match(ev.name):
            for child in ev.cpu_children:
                visit(child)
        else:
            out.append(KernelEvent(ev.name, float(ev.cpu_time_total)))
    for ev in events:
        if getattr(ev, "cpu_parent", None) is None and not _is_device_event(ev):
            visit(ev)
    return out


def device_kernel_events(events: Sequence[Any]) -> list[KernelEvent]:
    """Kernels that ran on the GPU, with their device time."""
    return [KernelEvent(ev.name, _device_us(ev)) for ev in events if _is_device_event(ev)]


def profile_calls(call: Callable[[], Any], restore: Callable[[], None] | None, device: str,
                  calls: int = 2) -> list[KernelEvent]:
    """Kernel events of ``calls`` single calls (restoring inputs outside each profile)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    found: list[KernelEvent] = []
    for _ in range(calls):
        if restore is not None:
            restore()
        if device == "cuda":
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            call()
            if device == "cuda":
                torch.cuda.synchronize()
        events = list(prof.events())
        found += device_kernel_events(events) if device == "cuda" else cpu_kernel_events(events)
    return found


def peak_call_bytes(call: Callable[[], Any], restore: Callable[[], None] | None, device: str) -> int | None:
    """Peak device memory one call allocates beyond what is live before it (None on CPU)."""
    if device != "cuda":
        return None
    if restore is not None:
        restore()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = call()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del out
    return max(int(peak - before), 0)


def attribution_records(key: Mapping[str, Any], by_class: Mapping[str, tuple[float, float]]) -> list[dict]:
    """Tidy rows (``results.ATTRIBUTION_COLUMNS``) for one variant of one case."""
    return [dict(key, kernel_class=c, us=float(by_class[c][0]), kernels=float(by_class[c][1]))
            for c in KERNEL_CLASSES]
