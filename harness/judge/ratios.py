"""In-run ratios: ``cleanpass`` against ``lowered``, ``ideal``, ``native`` and itself with folding
off (``cleanpass_nofold``: what folding buys), from one run.

Why ratios: what the project promises is relative and measured side by side. The runner
interleaves every variant of a case in the same blocks, so block ``b`` of ``cleanpass`` and
block ``b`` of ``lowered`` saw the same machine state; the paired bootstrap of those blocks
(``stats.ratio_ci(paired=True)``) cancels slow drifts and clock changes. A ratio travels across
machines of one model far better than an absolute median, and it is what the gate holds.

The table is tidy: one line per (case, denominator) with the point ratio and its interval.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from harness.store.results import CASE_KEY, unfolded_name
from harness.judge.stats import (DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, TooFewSamples, paired_blocks,
                                 ratio_ci)

log = logging.getLogger(__name__)

NUMERATOR = "cleanpass"
DENOMINATORS = ("lowered", "ideal", "native", unfolded_name(NUMERATOR))
#: The columns that name one case (the row key without the variant).
CASE = CASE_KEY
COLUMNS = list(CASE) + ["device_name", "numerator", "denominator", "ratio", "ratio_low",
                        "ratio_high", "blocks", "confidence", "numerator_p50_us",
                        "denominator_p50_us"]


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})


def ratio_table(samples: pd.DataFrame, *, n_boot: int = DEFAULT_BOOTSTRAP,
                confidence: float = DEFAULT_CONFIDENCE, seed: int = 0,
                min_blocks: int = 5) -> pd.DataFrame:
    """``cleanpass / d`` for every case and denominator ``d`` that has paired block samples.

    With fewer than ``min_blocks`` common blocks (the CPU smoke suite times 3) a line has the
    point ratio but no interval (``ratio_low``/``ratio_high`` NaN): shown, never gated."""
    if samples is None or samples.empty:
        return empty()
    records = []
    for case, grp in samples.groupby(list(CASE), sort=True, dropna=False):
        by_variant = {v: g for v, g in grp.groupby("variant", sort=False)}
        top = by_variant.get(NUMERATOR)
        if top is None:
            continue
        for den in DENOMINATORS:
            bottom = by_variant.get(den)
            if bottom is None:
                continue
            b, r = paired_blocks(bottom, top)
            if len(b) == 0:
                continue
            try:
                ci = ratio_ci(b, r, paired=True, n_boot=n_boot, confidence=confidence, seed=seed,
                              min_blocks=min_blocks)
                point, low, high = ci.point, ci.low, ci.high
            except TooFewSamples as exc:
                log.info("no interval for %s/%s of %s: %s", NUMERATOR, den, case, exc)
                point, low, high = float(np.median(r) / np.median(b)), math.nan, math.nan
            rec = dict(zip(CASE, case))
            rec.update(device_name=str(grp["device_name"].iloc[0]) if "device_name" in grp else "",
                       numerator=NUMERATOR, denominator=den, ratio=point, ratio_low=low,
                       ratio_high=high, blocks=len(b), confidence=confidence,
                       numerator_p50_us=float(pd.Series(r).median()),
                       denominator_p50_us=float(pd.Series(b).median()))
            records.append(rec)
    if not records:
        return empty()
    out = pd.DataFrame.from_records(records, columns=COLUMNS)
    out["num_tokens"] = out["num_tokens"].astype("int64")
    out["hidden"] = out["hidden"].astype("int64")
    out["blocks"] = out["blocks"].astype("int64")
    return out


def ratio_key(rec: dict) -> tuple:
    """(case..., denominator): how ratio lines match between a baseline and a run."""
    return tuple(rec[c] for c in CASE) + (rec["denominator"],)


def row_key(key: tuple, columns: tuple[str, ...]) -> tuple:
    """The ``cleanpass`` result row a ratio line belongs to, as a row key over ``columns``."""
    rec = dict(zip(CASE, key[:len(CASE)]), variant=NUMERATOR)
    return tuple(rec[c] for c in columns)
