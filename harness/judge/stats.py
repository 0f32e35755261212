"""Bootstrap confidence intervals for the latency ratio of two variants or two runs.

Why a bootstrap of block medians: latency samples are skewed (a long right tail of
scheduler hiccups and clock changes), so means and t-intervals cry wolf. The runner
interleaves the variants in blocks and stores one sample per variant per block (the block
median), which already absorbs most outliers; resampling those blocks gives an interval
for ``median(run) / median(base)`` without assuming a distribution (docs/timing.md).

Two modes:

* **paired** — both sides come from one interleaved run, so block ``b`` of A and block ``b``
  of B saw the same machine state. Resample block indices and keep pairs together; slow
  drifts cancel and the interval is tighter.
* **independent** — the sides come from two runs (a baseline file and today's run). Resample
  each side's blocks on its own.

The seed is fixed so that the same inputs always give the same verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class RatioCI:
    """``point`` = median(run) / median(base); [low, high] its percentile interval."""

    point: float
    low: float
    high: float
    n_base: int
    n_run: int
    paired: bool
    confidence: float


class TooFewSamples(ValueError):
    """Raised when a side has fewer blocks than the interval needs to mean anything."""


def _clean(values: np.ndarray | pd.Series | list[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr) & (arr > 0)]


def ratio_ci(
    base: np.ndarray | pd.Series | list[float],
    run: np.ndarray | pd.Series | list[float],
    *,
    paired: bool = False,
    n_boot: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    min_blocks: int = 5,
) -> RatioCI:
    """Percentile bootstrap CI of ``median(run) / median(base)`` over block samples.

    With ``paired=True`` the two arrays must be aligned by block index (same length, element
    ``i`` of each from block ``i``); see :func:`paired_blocks`.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    if paired:
        b = np.asarray(base, dtype=np.float64)
        r = np.asarray(run, dtype=np.float64)
        if b.shape != r.shape:
            raise ValueError("paired samples must have the same length (align them by block)")
        keep = np.isfinite(b) & np.isfinite(r) & (b > 0) & (r > 0)
        b, r = b[keep], r[keep]
        n = len(b)
        if n < min_blocks:
            raise TooFewSamples(f"{n} paired blocks < {min_blocks}")
        idx = rng.integers(0, n, size=(n_boot, n))
        boot = np.median(r[idx], axis=1) / np.median(b[idx], axis=1)
        n_base = n_run = n
    else:
        b, r = _clean(base), _clean(run)
        if len(b) < min_blocks or len(r) < min_blocks:
            raise TooFewSamples(f"{len(b)} baseline / {len(r)} run blocks < {min_blocks}")
        ib = rng.integers(0, len(b), size=(n_boot, len(b)))
        ir = rng.integers(0, len(r), size=(n_boot, len(r)))
        boot = np.median(r[ir], axis=1) / np.median(b[ib], axis=1)
        n_base, n_run = len(b), len(r)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    point = float(np.median(r) / np.median(b))
    return RatioCI(point, float(low), float(high), n_base, n_run, paired, confidence)


def paired_blocks(base: pd.DataFrame, run: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Align two sample frames (columns ``block``, ``sample_us``) on their block index."""
    merged = pd.merge(
        base[["block", "sample_us"]], run[["block", "sample_us"]], on="block", suffixes=("_b", "_r")
    ).sort_values("block")
    return merged["sample_us_b"].to_numpy(float), merged["sample_us_r"].to_numpy(float)
