"""Device-neutral timing: interleaved blocks, block medians, quantiles, CPU timer.

Method (docs/timing.md): variants are timed in blocks inside one process; in each block
every variant runs ``reps`` times and contributes one sample, the median of those repetitions.
The variant order rotates from block to block (A B C, B C A, ...) so drift and cache state
do not favour one variant. Anything that restores mutated inputs runs outside the timed region.
The CUDA timers live in ``harness.run.cuda_timing``; they plug into the same ``interleave``.
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

# One block of one variant: returns the block's sample in microseconds.
BlockFn = Callable[[], float]


@dataclass(frozen=True)
class Quantiles:
    """p20/p50/p80 of a variant's block samples, in microseconds (NaN when no samples)."""

    p20: float
    p50: float
    p80: float


def quantiles(samples_us: Sequence[float]) -> Quantiles:
    """p20/p50/p80 with linear interpolation; NaN for an empty list."""
    vals = np.asarray([s for s in samples_us if s == s], dtype=float)
    if vals.size == 0:
        nan = float("nan")
        return Quantiles(nan, nan, nan)
    p20, p50, p80 = np.percentile(vals, [20, 50, 80])
    return Quantiles(float(p20), float(p50), float(p80))


def block_order(names: Sequence[str], block: int) -> list[str]:
    """The variant order for block ``block``: ``names`` rotated left by ``block``."""
    if not names:
        return []
    k = block % len(names)
    return list(names[k:]) + list(names[:k])


def interleave(block_fns: Mapping[str, BlockFn], blocks: int) -> dict[str, list[float]]:
    """Run ``blocks`` rounds over all variants in rotating order; one sample per variant per block.

    A variant whose block raises stops being timed (its samples so far are kept) and the
    error is logged; the others go on.
    """
    names = list(block_fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    dead: set[str] = set()
    for b in range(blocks):
        for name in block_order(names, b):
            if name in dead:
                continue
            try:
                samples[name].append(float(block_fns[name]()))
            except Exception:  # noqa: BLE001 - a failing variant must not stop the others
                log.exception("timing %s failed in block %d; dropping it", name, b)
                dead.add(name)
    return samples


def reps_for(single_call_s: float, target_block_s: float, min_reps: int, max_reps: int) -> int:
    """Repetitions per block so one block lasts about ``target_block_s``."""
    if single_call_s <= 0 or single_call_s != single_call_s:
        return max_reps
    return int(min(max_reps, max(min_reps, round(target_block_s / single_call_s))))


def cpu_block(call: Callable[[], object], restore: Callable[[], None] | None, reps: int) -> float:
    """Median of ``reps`` timed calls in microseconds; ``restore`` runs untimed before each."""
    times = []
    clock = time.perf_counter_ns
    for _ in range(reps):
        if restore is not None:
            restore()
        t0 = clock()
        call()
        t1 = clock()
        times.append((t1 - t0) / 1e3)
    return statistics.median(times)


def time_once_s(call: Callable[[], object], restore: Callable[[], None] | None = None) -> float:
    """Seconds for one call (after a restore), used to size the repetitions."""
    if restore is not None:
        restore()
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def copy_gbps(nbytes: int, seconds: float) -> float:
    """Bandwidth of a copy of ``nbytes``: bytes read plus bytes written, in GB/s (1e9)."""
    if seconds <= 0:
        return float("nan")
    return 2.0 * nbytes / seconds / 1e9


def measure_cpu_copy_gbps(nbytes: int = 64 << 20, reps: int = 7) -> float:
    """Measured host memory copy bandwidth (the CPU run's ceiling for % of peak)."""
    import torch

    src = torch.randn(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return copy_gbps(src.numel() * 4, statistics.median(times))
