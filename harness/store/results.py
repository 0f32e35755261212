"""Typed result rows -> tidy DataFrame; run directories; atomic, never-overwriting writes.

GB/s and % of peak are computed here and nowhere else: ``gbps = model_bytes / p50`` (the
workload's analytic minimum traffic over the median latency) and ``pct_of_peak`` against the
copy bandwidth measured at the start of the same run (``env.json: peak_gbps_measured``).

Row status convention: ``status`` is a :class:`Status` (``"ok"``, ``"fail"`` or ``"skipped"``).
A skipped row (a backend that is not available here) has ``ok=True`` and
``error="skipped: <reason>"`` and no latency; a failed row has ``ok=False`` and the reason in
``error``. Readers filter on ``status`` (:func:`measured_rows`), never on words in ``error``.

``bitwise_partner`` names the variant a row promises to match bit for bit (``cleanpass``,
``vllm`` and ``vllm_real`` against ``lowered``: the pass may not change a single bit). That promise is a property
of our code and holds on every machine; other rows' ``bitwise_equal`` is an observation that
depends on the CPU's vector units (eager aten kernels vs generated code).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

# Variants that run vLLM's pass or our model of it, holes included: their validation failures
# are findings about that pass (e.g. rotary_views_base_read), not failures of a run.
REFERENCE_VARIANTS = frozenset({"vllm", "vllm_real"})

RESULT_FILES = ("results.parquet", "results.csv", "env.json", "samples.parquet", "benchmark.json")
KEY_COLUMNS = ["workload", "model", "hidden", "num_tokens", "dtype", "variant"]
SAMPLE_COLUMNS = ["workload", "variant", "dtype", "num_tokens", "hidden", "device", "device_name",
                  "block", "sample_us"]


class Status(str, enum.Enum):
    """A row's outcome; stored as its string value."""

    OK = "ok"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass
class Row:
    """One (workload, shape, dtype, variant) result. Unmeasured numbers stay None/NaN."""

    workload: str
    variant: str
    dtype: str
    num_tokens: int
    hidden: int
    model: str = ""
    device: str = "cpu"
    device_name: str = ""
    suite: str = ""
    status: str = Status.OK.value
    ok: bool = True
    error: str = ""
    numerics: str = ""
    clones_before: int | None = None
    clones_after: int | None = None
    kernels: int | None = None
    bytes_accessed: int | None = None
    bytes_at_tokens: int | None = None
    model_bytes: int | None = None
    latency_us_p20: float = math.nan
    latency_us_p50: float = math.nan
    latency_us_p80: float = math.nan
    launch_us_p20: float = math.nan
    launch_us_p50: float = math.nan
    launch_us_p80: float = math.nan
    max_abs_err: float = math.nan
    bitwise_equal: bool | None = None
    bitwise_partner: str = ""
    compile_s: float = math.nan
    block_count: int = 0
    reps: int = 0
    timer: str = ""

    def fail(self, reason: str) -> "Row":
        """Mark failed, keeping the first reason and appending later ones."""
        self.ok = False
        self.status = Status.FAIL.value
        self.error = f"{self.error}; {reason}" if self.error else reason
        return self

    def skip(self, reason: str) -> "Row":
        self.ok = True
        self.status = Status.SKIPPED.value
        self.error = f"skipped: {reason}"
        return self


ROW_COLUMNS = [f.name for f in dataclasses.fields(Row)]
COLUMNS = ROW_COLUMNS[:ROW_COLUMNS.index("max_abs_err")] + ["gbps", "pct_of_peak"] + \
    ROW_COLUMNS[ROW_COLUMNS.index("max_abs_err"):]
_INT_COLUMNS = ["clones_before", "clones_after", "kernels", "bytes_accessed", "bytes_at_tokens",
                "model_bytes"]


def gbps(model_bytes: Any, latency_us: Any) -> float:
    """Achieved GB/s (1e9 bytes/s) of the analytic byte model at the given latency."""
    try:
        b, us = float(model_bytes), float(latency_us)
    except (TypeError, ValueError):
        return math.nan
    if not (us > 0) or b != b:
        return math.nan
    return b / (us * 1e-6) / 1e9


def pct_of_peak(achieved_gbps: float, peak_gbps: float | None) -> float:
    """Achieved bandwidth as a percentage of the measured copy bandwidth."""
    if peak_gbps is None or not (peak_gbps > 0) or achieved_gbps != achieved_gbps:
        return math.nan
    return 100.0 * achieved_gbps / peak_gbps


def rows_to_frame(rows: Iterable[Row], peak_gbps: float | None) -> pd.DataFrame:
    """The tidy results table with stable column order and dtypes."""
    records = [dataclasses.asdict(r) for r in rows]
    df = pd.DataFrame.from_records(records, columns=ROW_COLUMNS)
    df["gbps"] = [gbps(b, t) for b, t in zip(df["model_bytes"], df["latency_us_p50"])]
    df["pct_of_peak"] = [pct_of_peak(g, peak_gbps) for g in df["gbps"]]
    return normalize_frame(df[COLUMNS])


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Apply the schema dtypes (nullable ints/bools) so parquet and CSV read back the same."""
    df = df.copy()
    for c in _INT_COLUMNS:
        df[c] = pd.array([None if _missing(v) else int(v) for v in df[c]], dtype="Int64")
    df["bitwise_equal"] = pd.array([None if _missing(v) else bool(v) for v in df["bitwise_equal"]],
                                   dtype="boolean")
    df["ok"] = df["ok"].astype(bool)
    for c in ("num_tokens", "hidden", "block_count", "reps"):
        df[c] = df[c].astype("int64")
    for c in ("error", "model", "numerics", "device_name", "suite", "status", "timer",
              "bitwise_partner"):
        df[c] = df[c].fillna("").astype(str)
    return df.reset_index(drop=True)


def with_status(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with a ``status`` column; files written before it existed get it derived once, here."""
    if "status" in rows.columns:
        return rows
    rows = rows.copy()
    legacy_skip = rows["error"].fillna("").astype(str).str.startswith("skipped:")
    ok = rows["ok"].fillna(False).astype(bool)
    rows["status"] = [Status.SKIPPED.value if s else (Status.OK.value if o else Status.FAIL.value)
                      for s, o in zip(legacy_skip, ok)]
    return rows


def measured_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that ran (ok or failed): everything but ``status == skipped``."""
    return rows[with_status(rows)["status"] != Status.SKIPPED.value]


def samples_frame(records: Sequence[dict]) -> pd.DataFrame:
    """Raw per-block samples (one per variant per block) with the documented columns."""
    df = pd.DataFrame.from_records(list(records), columns=SAMPLE_COLUMNS)
    df["block"] = df["block"].astype("int64")
    df["sample_us"] = df["sample_us"].astype(float)
    for c in ("num_tokens", "hidden"):
        df[c] = df[c].astype("int64")
    return df


# ---- run directories and atomic writes -------------------------------------------------

def utc_stamp(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(root: str | os.PathLike = "results/runs", commit: str = "nocommit",
                now: _dt.datetime | None = None) -> Path:
    """Create and return a fresh ``<root>/<utc>_<commit>[-N]/``; an existing one is never reused."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{utc_stamp(now)}_{commit}"
    for n in range(0, 1000):
        path = root / (base if n == 0 else f"{base}-{n + 1}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run directory name under {root} for {base}")


def claim_out_dir(path: str | os.PathLike) -> Path:
    """Use ``--out``: create it, or accept an existing directory holding none of our files."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    taken = [f for f in RESULT_FILES if (path / f).exists()]
    if taken:
        raise FileExistsError(f"{path} already holds run files ({', '.join(taken)}); "
                              "results are never overwritten: pick another --out")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and ``os.link`` it into place.

    ``link`` fails when ``path`` exists, so an existing file is never replaced, and readers
    never see a half-written file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_run(run_dir: Path, results: pd.DataFrame, samples: pd.DataFrame, env: dict,
              extra: dict[str, pd.DataFrame] | None = None) -> list[Path]:
    """Write all run files atomically into ``run_dir``; returns the paths written."""
    from harness.store.benchjson import benchmark_json

    run_dir = Path(run_dir)
    files: list[tuple[str, bytes]] = [
        ("results.parquet", _parquet_bytes(results)),
        ("results.csv", results.to_csv(index=False).encode()),
        ("samples.parquet", _parquet_bytes(samples)),
        ("benchmark.json", json.dumps(benchmark_json(results, samples, env), indent=1,
                                      default=str).encode()),
    ]
    for name, df in (extra or {}).items():
        files.append((name, _parquet_bytes(df)))
    files.append(("env.json", json.dumps(env, indent=1, sort_keys=True, default=str).encode()))
    written = []
    for name, data in files:  # env.json last: its presence marks a complete run
        atomic_write_bytes(run_dir / name, data)
        written.append(run_dir / name)
    return written


def read_run(run_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Results, samples and env of a run directory."""
    run_dir = Path(run_dir)
    results = pd.read_parquet(run_dir / "results.parquet")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    env = json.loads((run_dir / "env.json").read_text())
    return results, samples, env


@dataclass
class RunTables:
    """Everything a run produces before it is written."""

    rows: list[Row] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    launch_samples: list[dict] = field(default_factory=list)
