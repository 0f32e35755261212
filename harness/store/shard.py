"""Split the case matrix into N shards (CI matrix, cluster jobs) and join shard runs back.

Shards are cut at compile-group boundaries (workload, dtype, model, hidden): every token count
of a group reuses one compile, so splitting a group would compile it twice. Groups are handed
out largest first to the least-loaded shard (ties to the lowest index): deterministic, so each
of N independent jobs computes the same split, and every case lands in exactly one shard.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import pandas as pd

from harness.store import results as res

log = logging.getLogger(__name__)

C = TypeVar("C")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K) -> (K, N)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--shard wants K/N (e.g. 2/8), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard {text}: need 1 <= K <= N")
    return k, n


def assign_groups(group_sizes: dict[str, int], n: int) -> dict[str, int]:
    """Group key -> shard index (0-based), balancing the number of cases per shard."""
    load = [0] * n
    out: dict[str, int] = {}
    for key in sorted(group_sizes, key=lambda g: (-group_sizes[g], g)):
        i = min(range(n), key=lambda j: (load[j], j))
        out[key] = i
        load[i] += group_sizes[key]
    return out


def shard_cases(cases: Sequence[C], k: int, n: int, group_of=lambda c: c.group_key) -> list[C]:
    """The cases of shard K of N (1-based), in their original order."""
    sizes: dict[str, int] = {}
    for c in cases:
        sizes[group_of(c)] = sizes.get(group_of(c), 0) + 1
    owner = assign_groups(sizes, n)
    return [c for c in cases if owner[group_of(c)] == k - 1]


def merge_runs(dirs: Sequence[str | Path], out: Path | Callable[[], Path]) -> Path:
    """Join shard run directories into a new run directory ``out``.

    Refuses duplicates (the same row key in two shards) and mixed devices (GPU models):
    a merged run must be one comparable measurement. ``out`` may be a function that creates
    the directory: it is called only once the inputs were read and checked, so a failed merge
    leaves no empty run directory behind.
    """
    if not dirs:
        raise ValueError("merge needs at least one run directory")
    frames, samples, envs, launch = [], [], [], []
    for d in dirs:
        r, s, e = res.read_run(d)
        frames.append(r)
        samples.append(s)
        envs.append(e)
        lp = Path(d) / "samples_launch.parquet"
        if lp.exists():
            launch.append(pd.read_parquet(lp))
    names = {(e.get("device"), e.get("device_name")) for e in envs}
    if len(names) > 1:
        raise ValueError(f"refusing to merge runs from different devices: {sorted(map(str, names))}")
    results = pd.concat(frames, ignore_index=True)
    dup = results.duplicated(list(res.ROW_KEY), keep=False)
    if dup.any():
        keys = results.loc[dup, list(res.ROW_KEY)].drop_duplicates().head(5).to_dict("records")
        raise ValueError(f"shards overlap on {int(dup.sum())} rows, e.g. {keys}")
    results = res.normalize_frame(results.sort_values(list(res.ROW_KEY), kind="stable"))
    peaks = [e.get("peak_gbps_measured") for e in envs if e.get("peak_gbps_measured")]
    env = dict(envs[0])
    env["peak_gbps_measured"] = float(pd.Series(peaks).median()) if peaks else None
    env["shards"] = [{"dir": str(d), "utc": e.get("utc"), "commit": e.get("commit"),
                      "hostname": e.get("hostname"), "shard": e.get("shard"),
                      "peak_gbps_measured": e.get("peak_gbps_measured")} for d, e in zip(dirs, envs)]
    env["shard"] = None
    commits = {e.get("commit") for e in envs}
    if len(commits) > 1:
        log.warning("merging shards from different commits: %s", sorted(map(str, commits)))
        env["commit"] = ",".join(sorted(map(str, commits)))
    # gbps/pct_of_peak of each shard used its own measured peak; recompute against the merged one
    results["pct_of_peak"] = [res.pct_of_peak(g, env["peak_gbps_measured"]) for g in results["gbps"]]
    results["saving_realized"] = res.saving_realized(results, env["peak_gbps_measured"])
    results["bytes_note"] = res.bytes_notes(results)  # lowered and a pass row may sit in different shards
    extra = {"samples_launch.parquet": pd.concat(launch, ignore_index=True)} if launch else None
    out = out() if callable(out) else out
    res.write_run(out, results, pd.concat(samples, ignore_index=True), env, extra=extra)
    return out
