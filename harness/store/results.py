"""Typed result rows -> tidy DataFrame; run directories; atomic, never-overwriting writes.

GB/s and % of peak are computed here and nowhere else: ``gbps = model_bytes / p50`` (the
workload's analytic minimum traffic over the median latency) and ``pct_of_peak`` against the
copy bandwidth measured at the start of the same run (``env.json: peak_gbps_measured``).
So are the columns that compare a pass row with ``lowered`` of its case: ``saving_realized``
and ``bytes_note`` (the exact bytes removed against the pass's decisions).

Row status convention: ``status`` is a :class:`Status` (``"ok"``, ``"fail"`` or ``"skipped"``).
A skipped row (a backend that is not available here) has ``ok=True`` and
``error="skipped: <reason>"`` and no latency; a failed row has ``ok=False`` and the reason in
``error``. Readers filter on ``status`` (:func:`measured_rows`), never on words in ``error``.

``schema_version`` and ``run_id`` are on every row written (``write_run`` stamps them): the
row layout's version (:data:`SCHEMA_VERSION`; files without the column are version
:data:`LEGACY_SCHEMA_VERSION`) and the run directory's name, so rows of many runs can be stacked
in one DataFrame (``harness.store.history.load_runs``) and still say where they came from.

``copies`` counts the copy launches in Inductor's generated code for the row's compiled graph(s)
(``harness.run.codecheck``: copy kernels, clones fused into other kernels, layout copies Inductor
made for an opaque kernel, extern copy calls); it is empty (NA, never 0) for the eager variants
(``eager``, ``ideal``), which have no generated code, and in files written before the column.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from harness.store.atomic import atomic_write

RESULT_FILES = ("results.parquet", "results.csv", "env.json", "samples.parquet", "benchmark.json")
ATTRIBUTION_FILE = "attribution.parquet"
#: written only by some runs; ``--out`` refuses a directory holding them too
OPTIONAL_FILES = ("samples_launch.parquet", ATTRIBUTION_FILE)
#: Tables derived from a finished run and added to its directory (``write_table``).
DERIVED_FILES = ("ratios.parquet",)
#: The row key: one measured configuration, within a run and across runs (gate, trend, merge).
ROW_KEY = ("workload", "variant", "dtype", "num_tokens", "hidden", "device")
#: A case: the row key without the variant (all variants of a case are timed together).
CASE_KEY = tuple(c for c in ROW_KEY if c != "variant")
SAMPLE_COLUMNS = list(ROW_KEY) + ["device_name", "block", "sample_us"]


#: The row layout's version; bump it when a column changes meaning or a new one is added.
SCHEMA_VERSION = 4
#: Rows written before ``schema_version`` existed.
LEGACY_SCHEMA_VERSION = 1


class Status(str, enum.Enum):
    """A row's outcome; stored as its string value."""

    OK = "ok"
    FAIL = "fail"
    SKIPPED = "skipped"


class Verdict(str, enum.Enum):
    """A row's numerics: matched its bit-exact partner, within tolerance of float64, or not."""

    IDENTICAL = "bitwise_identical"
    WITHIN_TOLERANCE = "within_tolerance"
    FAIL = "fail"


class Outcome(str, enum.Enum):
    """A row's result read against its workload's prediction (``expected_wrong``)."""

    OK = "ok"
    SKIPPED = "skipped"
    EXPECTED_WRONG = "expected wrong (as predicted)"
    UNEXPECTED = "unexpected failure"
    PREDICTION_STALE = "predicted wrong, but correct"


def outcome(status: str, ok: bool, expected_wrong: bool) -> Outcome:
    """Tell an expected reference-pass failure from a new one (and from a stale prediction)."""
    if Status(status) is Status.SKIPPED:
        return Outcome.SKIPPED
    if not ok or Status(status) is Status.FAIL:
        return Outcome.EXPECTED_WRONG if expected_wrong else Outcome.UNEXPECTED
    return Outcome.PREDICTION_STALE if expected_wrong else Outcome.OK


@dataclass(frozen=True)
class VariantInfo:
    """What a variant is: declared once, at its registration (``harness.run.variants``), and
    stored with every run (``env.json: variants``) so judging and reporting read it from there.

    ``policy``: the clone-elimination policy it runs (None: no pass). ``partner``: the variant it
    must match bit for bit. ``baseline``: the run's comparison base (``bitwise_equal``, clones
    and bytes removed, speedups). ``reference``: the reference pass, with known holes; workloads
    predict where it is wrong (``expected_wrong``) and its failures never fail a run. ``bound``:
    the hand-written lower bound (no clones at all).
    """

    name: str
    policy: str | None = None
    partner: str | None = None
    baseline: bool = False
    reference: bool = False
    bound: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: What the variant names of runs written before ``env.json`` carried declarations meant (a
#: migration of old files, e.g. the committed baselines and the H100 runs; never extended).
DECLARATIONS_BEFORE_ENV_VARIANTS = (
    VariantInfo("eager"),
    VariantInfo("native"),
    VariantInfo("lowered", baseline=True),
    VariantInfo("vllm", policy="vllm", partner="lowered", reference=True),
    VariantInfo("vllm_real", policy="vllm-real", partner="lowered", reference=True),
    VariantInfo("cleanpass", policy="sound", partner="lowered"),
    VariantInfo("ideal", bound=True),
)


def variant_infos(env: dict, rows: pd.DataFrame | None = None) -> list[VariantInfo]:
    """The run's variant declarations, in run order (``env.json: variants``); an older run gets
    ``DECLARATIONS_BEFORE_ENV_VARIANTS`` for the variants its rows hold."""
    stored = env.get("variants")
    if stored:
        return [VariantInfo(**{k: v for k, v in rec.items() if k in _INFO_FIELDS}) for rec in stored]
    present = set(rows["variant"].astype(str)) if rows is not None and not rows.empty else set()
    known = [i for i in DECLARATIONS_BEFORE_ENV_VARIANTS if i.name in present]
    named = {i.name for i in known}
    return known + [VariantInfo(n) for n in sorted(present - named)]


_INFO_FIELDS = {f.name for f in dataclasses.fields(VariantInfo)}


def baseline_variant(infos: Sequence[VariantInfo]) -> str | None:
    """The comparison base of a run (``lowered``), or None when the run declares none."""
    return next((i.name for i in infos if i.baseline), None)


def pass_variant(infos: Sequence[VariantInfo]) -> str | None:
    """The pass under test (``cleanpass``): the first variant with a policy that is no reference."""
    return next((i.name for i in infos if i.policy is not None and not i.reference), None)


def unfolded_name(pass_name: str) -> str:
    """The name of the pass's twin with folding off (``cleanpass`` -> ``cleanpass_nofold``)."""
    return f"{pass_name}_nofold"


def unfolded_variant(infos: Sequence[VariantInfo], rows: pd.DataFrame | None = None) -> str | None:
    """The pass with folding off (elimination alone), when the run declares it and, given its
    ``rows``, ran it (``--variants`` may leave it out): what the pass saves beyond it is folding's."""
    cand = pass_variant(infos)
    name = unfolded_name(cand) if cand else None
    if not any(i.name == name for i in infos):
        return None
    return name if rows is None or name in set(rows["variant"]) else None


def reference_variant(infos: Sequence[VariantInfo]) -> str | None:
    """The reference pass (``vllm``), or None."""
    return next((i.name for i in infos if i.reference), None)


def bound_variant(infos: Sequence[VariantInfo]) -> str | None:
    """The hand-written bound (``ideal``), or None."""
    return next((i.name for i in infos if i.bound), None)


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
    # which compile pipeline made the row: "ours" (workloads.pipeline), "vllm-backend" (vLLM's
    # VllmBackend on IR-op models) or "vllm-engine" (vllm.LLM on vLLM's model code)
    pipeline: str = "ours"
    status: Status = Status.OK
    ok: bool = True
    error: str = ""
    numerics: Verdict | None = None
    clones_before: int | None = None
    clones_after: int | None = None
    kernels: int | None = None
    copies: int | None = None          # copy launches in Inductor's generated code (None: eager)
    bytes_accessed: int | None = None
    bytes_exact: int | None = None     # our count, exact for views (harness.run.exact_bytes)
    bytes_decided: int | None = None   # read + write bytes of the clones the pass removed/folded
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
    expected_wrong: bool = False
    compile_s: float = math.nan
    block_count: int = 0
    reps: int = 0
    timer: str = ""
    # -- where the time goes (kernel attribution) --------------------------------------
    copy_us: float = math.nan          # time per call in copy kernels (attribution runs only)
    peak_mem_bytes: int | None = None  # peak device memory of one call (CUDA; None on CPU)
    # -- provenance of the row (stamped by write_run) ---------------------------------
    schema_version: int = SCHEMA_VERSION
    run_id: str = ""

    def fail(self, reason: str) -> "Row":
        """Mark failed, keeping the first reason and appending later ones."""
        self.ok = False
        self.status = Status.FAIL
        self.error = f"{self.error}; {reason}" if self.error else reason
        return self

    def skip(self, reason: str) -> "Row":
        self.ok = True
        self.status = Status.SKIPPED
        self.error = f"skipped: {reason}"
        return self


ROW_COLUMNS = [f.name for f in dataclasses.fields(Row)]
COLUMNS = ROW_COLUMNS[:ROW_COLUMNS.index("max_abs_err")] + ["gbps", "pct_of_peak"] + \
    ROW_COLUMNS[ROW_COLUMNS.index("max_abs_err"):] + ["saving_realized", "bytes_note"]
_INT_COLUMNS = ["clones_before", "clones_after", "kernels", "copies", "bytes_accessed", "bytes_exact",
                "bytes_decided", "bytes_at_tokens", "model_bytes", "peak_mem_bytes"]
#: row columns added with kernel attribution; older files lack them (read back as missing)
ATTRIBUTION_ROW_COLUMNS = ("copy_us", "peak_mem_bytes", "saving_realized")
#: row columns added later still (schema 4); older files lack them (read back as missing)
LATER_ROW_COLUMNS = ATTRIBUTION_ROW_COLUMNS + ("copies",)
#: columns added with exact byte accounting (schema 3); older files read back empty
EXACT_BYTES_COLUMNS = ("bytes_exact", "bytes_decided", "bytes_note")
#: variants whose saving against ``lowered`` is the pass's work (``saving_realized``)
PASS_VARIANTS = ("cleanpass", "vllm", "vllm_real")


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
    df["saving_realized"] = saving_realized(df, peak_gbps)
    df["bytes_note"] = bytes_notes(df)
    return normalize_frame(df[COLUMNS])


def saving_realized(df: pd.DataFrame, peak_gbps: float | None) -> list[float]:
    """Per row: time the pass saved / the time its removed bytes cost at the measured peak.

    For ``PASS_VARIANTS`` rows against ``lowered`` of the same case: ``(p50(lowered) -
    p50(row)) / ((bytes_exact(lowered) - bytes_exact(row)) / peak)``. 1.0 means the pass
    saved exactly what moving the removed bytes at copy bandwidth costs; NaN where nothing was
    removed, a latency or the peak is missing.
    """
    return [math.nan if base is None else _realized(base, r, peak_gbps) for r, base in _with_lowered(df)]


def _with_lowered(df: pd.DataFrame) -> list[tuple[dict, dict | None]]:
    """Each row with the ``lowered`` row of its case when it is a ``PASS_VARIANTS`` row."""
    case = list(CASE_KEY)
    records = df.to_dict("records")
    lowered = {tuple(r[c] for c in case): r for r in records if r["variant"] == "lowered"}
    return [(r, lowered.get(tuple(r[c] for c in case)) if r["variant"] in PASS_VARIANTS else None)
            for r in records]


def byte_column(df: pd.DataFrame) -> str:
    """The byte count reports compare variants on: ``bytes_exact``, or ``bytes_accessed`` for
    runs written before it (one column for the whole table, never a mix)."""
    exact = "bytes_exact"
    return exact if exact in df.columns and df[exact].notna().any() else "bytes_accessed"


def bytes_notes(df: pd.DataFrame) -> list[str]:
    """Per row: empty, or why the exact bytes a pass removed differ from its decisions.

    For ``PASS_VARIANTS`` rows, ``bytes_exact(lowered) - bytes_exact(row)`` must equal
    ``bytes_decided`` (read + write of every clone removed or folded). It may not when the two
    compiles counted different token counts, when a count is missing, or when Inductor handled
    or charged the code around a clone differently (see ``harness.run.exact_bytes``): the note
    says which, with the numbers.
    """
    return [_bytes_note(base, r) if base is not None else "" for r, base in _with_lowered(df)]


def _bytes_note(base: dict, row: dict) -> str:
    skipped = Status.SKIPPED.value
    if row["variant"] not in PASS_VARIANTS or skipped in (_status_of(row), _status_of(base)):
        return ""
    values = [base.get("bytes_exact"), row.get("bytes_exact"), row.get("bytes_decided")]
    if any(_missing(v) for v in values):
        return "no exact count to reconcile: " + ", ".join(
            name for name, v in zip(("lowered bytes_exact", "bytes_exact", "bytes_decided"), values) if _missing(v))
    if not _missing(base.get("bytes_at_tokens")) and base.get("bytes_at_tokens") != row.get("bytes_at_tokens"):
        return (f"counted at different token counts (lowered at {base['bytes_at_tokens']}, this row at "
                f"{row['bytes_at_tokens']})")
    removed, decided = int(values[0]) - int(values[1]), int(values[2])
    if removed == decided:
        return ""
    return (f"removed {removed} bytes, decisions say {decided} ({removed - decided:+d}): Inductor charges a "
            "kernel differently once a clone is gone (a broadcast read of a larger buffer is charged per "
            "element read, of a small one at most its size), fused a clone into its producer, or put a copy back")


def _status_of(row: dict) -> str:
    status = row.get("status")
    return status.value if isinstance(status, enum.Enum) else str(status)


def _realized(base: dict, row: dict, peak_gbps: float | None) -> float:
    try:
        removed = float(base["bytes_exact"]) - float(row["bytes_exact"])
        saved_us = float(base["latency_us_p50"]) - float(row["latency_us_p50"])
    except (TypeError, ValueError):
        return math.nan
    if not (removed > 0) or saved_us != saved_us or peak_gbps is None or not (peak_gbps > 0):
        return math.nan
    return saved_us / (removed / (peak_gbps * 1e9) * 1e6)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Apply the schema dtypes (nullable ints/bools) so parquet and CSV read back the same."""
    df = df.copy()
    for c in LATER_ROW_COLUMNS:  # runs written before these columns existed
        if c not in df.columns:
            df[c] = math.nan
    for c in EXACT_BYTES_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c == "bytes_note" else None
    for c in _INT_COLUMNS:
        df[c] = pd.array([None if _missing(v) else int(v) for v in df[c]], dtype="Int64")
    df["bitwise_equal"] = pd.array([None if _missing(v) else bool(v) for v in df["bitwise_equal"]],
                                   dtype="boolean")
    df["ok"] = df["ok"].astype(bool)
    for c in ("status", "numerics"):  # enums are stored as their values
        df[c] = [v.value if isinstance(v, enum.Enum) else v for v in df[c]]
    df["expected_wrong"] = df["expected_wrong"].fillna(False).astype(bool)
    if "schema_version" not in df.columns:
        df["schema_version"] = LEGACY_SCHEMA_VERSION
    df["schema_version"] = df["schema_version"].fillna(LEGACY_SCHEMA_VERSION)
    if "run_id" not in df.columns:
        df["run_id"] = ""
    if "pipeline" not in df.columns:  # every row before vLLM's pipelines came from ours
        df["pipeline"] = "ours"
    for c in ("num_tokens", "hidden", "block_count", "reps", "schema_version"):
        df[c] = df[c].astype("int64")
    for c in ("error", "model", "numerics", "device_name", "suite", "status", "timer",
              "bitwise_partner", "run_id", "bytes_note", "pipeline"):
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


# ---- kernel attribution: time per kernel class, one row per (case, variant, class) ---------

KERNEL_CLASSES = ("copy", "ir", "matmul", "attention", "other")
ATTRIBUTION_COLUMNS = ["workload", "variant", "dtype", "num_tokens", "hidden", "model", "device",
                       "kernel_class", "us", "kernels"]


def attribution_frame(records: Sequence[dict]) -> pd.DataFrame:
    """The tidy attribution table: ``us`` per call and ``kernels`` (launches, fused ones split)."""
    df = pd.DataFrame.from_records(list(records), columns=ATTRIBUTION_COLUMNS)
    for c in ("num_tokens", "hidden"):
        df[c] = df[c].astype("int64")
    for c in ("us", "kernels"):
        df[c] = df[c].astype(float)
    return df


def read_attribution(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """A run's attribution table, or None for runs made without ``--attribution``."""
    path = Path(run_dir) / ATTRIBUTION_FILE
    return pd.read_parquet(path) if path.exists() else None


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
    taken = [f for f in RESULT_FILES + OPTIONAL_FILES + DERIVED_FILES if (path / f).exists()]
    if taken:
        raise FileExistsError(f"{path} already holds run files ({', '.join(taken)}); "
                              "results are never overwritten: pick another --out")
    return path


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def stamp_run_id(results: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Every row names the run it belongs to and the schema it was written with."""
    results = results.copy()
    results["run_id"] = run_id
    if "schema_version" not in results.columns:
        results["schema_version"] = SCHEMA_VERSION
    results["schema_version"] = results["schema_version"].fillna(SCHEMA_VERSION).astype("int64")
    return results


def write_run(run_dir: Path, results: pd.DataFrame, samples: pd.DataFrame, env: dict,
              extra: dict[str, pd.DataFrame] | None = None) -> list[Path]:
    """Write all run files atomically into ``run_dir``; returns the paths written."""
    from harness.store.benchjson import benchmark_json

    run_dir = Path(run_dir)
    results = stamp_run_id(results, run_dir.name)
    env = dict(env, run_id=run_dir.name)
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
        atomic_write(run_dir / name, data)
        written.append(run_dir / name)
    return written


def write_table(run_dir: Path, name: str, df: pd.DataFrame) -> Path:
    """Add one derived table (e.g. ``ratios.parquet``) to a finished run; never overwrites."""
    path = Path(run_dir) / name
    atomic_write(path, _parquet_bytes(df))
    return path


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
    attribution: list[dict] = field(default_factory=list)
