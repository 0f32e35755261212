"""CUDA side of a case's timing: graph capture per variant, cold-L2 event timing, interleaved.

Primary numbers are CUDA-graph replays (launch overhead gone); the launch-inclusive numbers
call the variant directly. A variant that cannot be captured is timed launch-inclusive for
its primary numbers too, and its ``timer`` column says so.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import torch

from harness.run import cuda_timing
from harness.run import timing
from harness.run.suites import TimingPlan

log = logging.getLogger(__name__)


def time_variants(preps: dict[str, tuple[Any, Callable[[], None] | None]], plan: TimingPlan
                  ) -> tuple[dict[str, tuple[list[float], int, str]], dict[str, list[float]], int]:
    """Interleaved graph-replay and launch-inclusive timing of all variants of one case.

    Returns (primary samples with reps and timer per variant, launch-inclusive samples, blocks).
    """
    device = torch.device("cuda", torch.cuda.current_device())
    flush = cuda_timing.L2Flusher(device)
    runs: dict[str, Callable[[], Any]] = {}
    timers: dict[str, str] = {}
    for name, (prep, restore) in preps.items():
        try:
            graph = cuda_timing.capture_graph(prep.call, restore)
            runs[name], timers[name] = graph.replay, "cuda_graph"
        except Exception as e:  # noqa: BLE001 - fall back to launch-inclusive timing
            log.warning("CUDA graph capture of %s failed (%s); timing launches", name, e)
            torch.cuda.synchronize()
            runs[name], timers[name] = prep.call, "cuda_launch"
    reps_of: dict[str, int] = {}
    block_s = 0.0
    for name, run in runs.items():
        restore = preps[name][1]
        t0 = time.perf_counter()  # wall time per repetition, flush and restore included
        one_us = cuda_timing.event_block(run, restore, flush, 3)
        wall_one = (time.perf_counter() - t0) / 3
        reps_of[name] = timing.reps_for(one_us * 1e-6, plan.target_block_s, plan.min_reps, plan.max_reps)
        block_s += reps_of[name] * wall_one
    blocks = plan.blocks_for(block_s)
    primary = timing.interleave(
        {n: (lambda r=run, n=n: cuda_timing.event_block(r, preps[n][1], flush, reps_of[n]))
         for n, run in runs.items()}, blocks)
    launch = timing.interleave(
        {n: (lambda n=n: cuda_timing.event_block(preps[n][0].call, preps[n][1], flush, reps_of[n]))
         for n in runs}, plan.launch_blocks)
    del runs, flush
    return {n: (v, reps_of[n], timers[n]) for n, v in primary.items()}, launch, blocks
