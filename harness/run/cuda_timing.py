"""CUDA timing: CUDA-graph replays timed with events, cold L2, mutated inputs restored untimed.

Only imported on a CUDA run. Pure helpers (flush sizing, event arithmetic) are at the top and
tested on CPU; everything touching the device is below them.

Per repetition, on one stream: restore donated inputs (copy from pristine), flush L2 (write a
buffer larger than L2), record start event, replay (or call, for launch-inclusive timing),
record end event. Only replay/call lies between the events.
"""
from __future__ import annotations

import logging
import statistics
from typing import Any, Callable, Sequence

import torch

log = logging.getLogger(__name__)

MIN_FLUSH_BYTES = 256 << 20   # what triton.testing.do_bench uses
COPY_BENCH_BYTES = 1 << 30


def l2_flush_bytes(l2_bytes: int | None) -> int:
    """Size of the buffer to overwrite so nothing of ours stays in L2: >= 4x L2, >= 256 MiB."""
    l2 = int(l2_bytes or 0)
    return max(MIN_FLUSH_BYTES, 4 * l2)


def events_to_us(elapsed_ms: Sequence[float]) -> list[float]:
    """``Event.elapsed_time`` returns milliseconds; samples are microseconds."""
    return [float(ms) * 1e3 for ms in elapsed_ms]


def l2_cache_bytes(device: torch.device) -> int | None:
    """The L2 size torch reports for ``device`` (None where the property is missing)."""
    props = torch.cuda.get_device_properties(device)
    return getattr(props, "L2_cache_size", None)


class L2Flusher:
    """Overwrites a buffer larger than L2 (outside the timed region)."""

    def __init__(self, device: torch.device) -> None:
        self.buf = torch.empty(l2_flush_bytes(l2_cache_bytes(device)), dtype=torch.uint8, device=device)

    def __call__(self) -> None:
        self.buf.zero_()


def capture_graph(call: Callable[[], Any], restore: Callable[[], None] | None, warmup: int = 2):
    """Warm ``call`` up on a side stream, then capture it in a CUDA graph; returns the graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            if restore is not None:
                restore()
            call()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    if restore is not None:
        restore()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    torch.cuda.synchronize()
    return graph


def event_block(run: Callable[[], Any], restore: Callable[[], None] | None,
                flush: Callable[[], None] | None, reps: int) -> float:
    """Median over ``reps`` of the event-timed ``run``; restore and flush are untimed."""
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if restore is not None:
            restore()
        if flush is not None:
            flush()
        starts[i].record()
        run()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(events_to_us([s.elapsed_time(e) for s, e in zip(starts, ends)]))


def measure_copy_gbps(device: torch.device, nbytes: int = COPY_BENCH_BYTES, reps: int = 20) -> float:
    """Device-to-device copy bandwidth (read + write), the run's measured ceiling."""
    from harness.run.timing import copy_gbps

    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        dst.copy_(src)
        e.record()
        e.synchronize()
        ms.append(s.elapsed_time(e))
    del src, dst
    torch.cuda.empty_cache()
    return copy_gbps(nbytes, statistics.median(ms) / 1e3)
