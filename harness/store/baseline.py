"""Load run directories, write and read baseline files.

A baseline is **one parquet file**: the result rows of a run, each carrying its own raw
latency block samples in two list columns (``sample_block``: list<int64>, ``sample_us``:
list<double>; empty when the run had none for that row). The run's ``env.json`` is stored
in the parquet schema metadata under the key ``cleanpass.baseline`` as JSON
(``{"format": 2, "env": {...}, "source_run": ..., "created_utc": ..., "provenance": {...},
"ratio_hold": [...]}``), so the gate can refuse a baseline from another device model without
any sidecar file. One file means a baseline cannot lose its samples on the way to review.

Format 2 adds ``provenance`` (why the baseline was refreshed, from which commit, on which
torch/Triton/driver/CUDA/vLLM, CPU threads) and ``ratio_hold`` (the ratchet: per case and denominator the best
``cleanpass`` ratio landed so far). Format 1 files (no provenance) still load; their
provenance reads as unknown.

Baselines are refreshed on purpose (``python -m harness baseline --refresh --reason ...``),
never by CI; writing refuses to replace an existing file unless asked to.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.store.atomic import atomic_write
from harness.store.results import ROW_KEY, with_status

log = logging.getLogger(__name__)

FORMAT = 2
READABLE_FORMATS = (1, 2)
#: env keys recorded as the baseline's software stack (a change invalidates timings): vllm times
#: the vllm_real variant; a CPU run's thread count changes every CPU latency.
STACK_KEYS = ("torch", "triton", "driver", "cuda", "vllm", "torch_num_threads")
META_KEY = b"cleanpass.baseline"

#: Columns the gate and the report cannot work without (docs/results-schema.md).
REQUIRED_ROW_COLUMNS = ROW_KEY + (
    "clones_before",
    "clones_after",
    "kernels",
    "bytes_accessed",
    "latency_us_p50",
    "bitwise_equal",
    "ok",
    "error",
)
REQUIRED_SAMPLE_COLUMNS = ROW_KEY + ("block", "sample_us")


class InputError(Exception):
    """The input cannot be used (missing file, wrong schema, other device): exit code 2."""


@dataclass
class RunData:
    """One side of a comparison: result rows, raw block samples, and the run's env.json."""

    rows: pd.DataFrame
    samples: pd.DataFrame
    env: dict
    source: str = ""
    has_samples: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def device(self) -> str:
        return str(self.env.get("device", ""))

    @property
    def device_name(self) -> str:
        return str(self.env.get("device_name", ""))

    def samples_for(self, key: tuple) -> pd.DataFrame:
        """The block samples of one row key (may be empty); indexed once, on first use."""
        if self.samples.empty:
            return self.samples
        index = self.extra.get("_sample_index")
        if index is None:
            index = {
                tuple(k): grp for k, grp in self.samples.groupby(list(ROW_KEY), sort=False, dropna=False)
            }
            self.extra["_sample_index"] = index
        return index.get(tuple(key), self.samples.iloc[0:0])


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: missing columns {', '.join(missing)} (see docs/results-schema.md)")


def _normalise_rows(rows: pd.DataFrame) -> pd.DataFrame:
    rows = with_status(rows).copy()
    if "bitwise_partner" not in rows.columns:  # files from before the column: no promise recorded
        rows["bitwise_partner"] = ""
    rows["bitwise_partner"] = rows["bitwise_partner"].fillna("").astype(str)
    if "expected_wrong" not in rows.columns:  # files from before the column: nothing predicted
        rows["expected_wrong"] = False
    rows["expected_wrong"] = rows["expected_wrong"].fillna(False).astype(bool)
    rows["dtype"] = rows["dtype"].astype(str)
    rows["error"] = rows["error"].astype("object").where(rows["error"].notna(), "")
    rows["error"] = rows["error"].astype(str)
    for col in ("num_tokens", "hidden"):
        rows[col] = rows[col].astype("int64")
    return rows


def _normalise_samples(samples: pd.DataFrame) -> pd.DataFrame:
    samples = samples.copy()
    samples["dtype"] = samples["dtype"].astype(str)
    for col in ("num_tokens", "hidden", "block"):
        samples[col] = samples[col].astype("int64")
    samples["sample_us"] = samples["sample_us"].astype("float64")
    return samples


def _empty_samples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in REQUIRED_SAMPLE_COLUMNS})


def load_run(run_dir: Path | str) -> RunData:
    """Read a run directory (results.parquet, env.json, samples.parquet if present)."""
    run_dir = Path(run_dir)
    results, env_path = run_dir / "results.parquet", run_dir / "env.json"
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    for path in (results, env_path):
        if not path.is_file():
            raise InputError(f"missing file: {path}")
    try:
        env = json.loads(env_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable env.json {env_path}: {exc}") from exc
    try:
        rows = pd.read_parquet(results)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputError(f"unreadable parquet {results}: {exc}") from exc
    _check_columns(rows, REQUIRED_ROW_COLUMNS, str(results))
    samples_path = run_dir / "samples.parquet"
    has_samples = samples_path.is_file()
    if has_samples:
        try:
            samples = pd.read_parquet(samples_path)
        except Exception as exc:
            raise InputError(f"unreadable parquet {samples_path}: {exc}") from exc
        _check_columns(samples, REQUIRED_SAMPLE_COLUMNS, str(samples_path))
        samples = _normalise_samples(samples)
    else:
        log.info("%s has no samples.parquet; latency cannot be gated from it", run_dir)
        samples = _empty_samples()
    return RunData(_normalise_rows(rows), samples, env, str(run_dir), has_samples)


def provenance(run: RunData, reason: str, commit: str | None = None) -> dict:
    """Why and from what a baseline was written: the reason, the commit it was refreshed at,
    the commit the frozen run measured (and whether that tree was dirty), the software stack."""
    run_commit = str(run.env.get("commit") or "")
    return {
        "reason": reason,
        "commit": commit or run_commit,
        "run_commit": run_commit,
        "run_dirty": run.env.get("dirty"),
        "versions": {k: run.env.get(k) for k in STACK_KEYS},
    }


def describe_provenance(meta: dict) -> str:
    """One line for the gate: ``refreshed <utc> at <commit>: <reason> (torch .., ...)``."""
    prov = meta.get("provenance")
    created = meta.get("created_utc", "?")
    if not prov:
        env = meta.get("env", {})
        stack = ", ".join(f"{k} {env.get(k) or 'none'}" for k in STACK_KEYS)
        return (f"written {created} (format {meta.get('format')}): no reason or commit recorded "
                f"({stack})")
    versions = prov.get("versions", {})
    stack = ", ".join(f"{k} {versions.get(k) or 'none'}" for k in STACK_KEYS)
    measured = prov.get("run_commit") or "?"
    measured += ", dirty tree" if prov.get("run_dirty") else ""
    return (f"refreshed {created} at {prov.get('commit') or '?'} (run measured at {measured}): "
            f"{prov.get('reason')} ({stack})")


def baseline_table(run: RunData, prov: dict | None = None,
                   ratio_hold: list[dict] | None = None) -> pa.Table:
    """The baseline as an Arrow table: rows + per-row sample lists + env in the metadata."""
    rows = run.rows.reset_index(drop=True)
    blocks: list[list[int]] = []
    values: list[list[float]] = []
    grouped = {}
    if not run.samples.empty:
        for key, grp in run.samples.groupby(list(ROW_KEY), sort=False):
            grp = grp.sort_values("block")
            grouped[tuple(key)] = (grp["block"].tolist(), grp["sample_us"].tolist())
    for rec in rows[list(ROW_KEY)].itertuples(index=False, name=None):
        b, v = grouped.get(tuple(rec), ([], []))
        blocks.append([int(x) for x in b])
        values.append([float(x) for x in v])
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.append_column("sample_block", pa.array(blocks, type=pa.list_(pa.int64())))
    table = table.append_column("sample_us", pa.array(values, type=pa.list_(pa.float64())))
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(
        {
            "format": FORMAT,
            "env": run.env,
            "source_run": run.source,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "has_samples": run.has_samples,
            "provenance": prov,
            "ratio_hold": ratio_hold or [],
        },
        sort_keys=True,
    ).encode()
    return table.replace_schema_metadata(meta)


def write_baseline(run: RunData, out: Path | str, *, force: bool = False, reason: str = "",
                   commit: str | None = None, ratio_hold: list[dict] | None = None) -> Path:
    """Write ``run`` as a baseline file (atomically); refuse to overwrite unless ``force``.

    ``reason`` (and ``commit``) go into the provenance; ``ratio_hold`` is the ratchet's list
    of held ratios (dicts with the ratio line's case columns, ``denominator`` and ``hold``)."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; baselines are refreshed on purpose: "
                              "pass --refresh --reason")
    sink = pa.BufferOutputStream()
    table = baseline_table(run, provenance(run, reason, commit), ratio_hold)
    pq.write_table(table, sink, compression="zstd")
    atomic_write(out, sink.getvalue().to_pybytes(), replace=True)
    log.info("wrote baseline %s (%d rows, %d samples)", out, len(run.rows), len(run.samples))
    return out


def load_baseline(path: Path | str) -> RunData:
    """Read a baseline file back into rows, exploded samples and env."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing file: {path}")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise InputError(f"unreadable parquet {path}: {exc}") from exc
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(f"{path} is not a cleanpass baseline (no {META_KEY.decode()} metadata)")
    meta = json.loads(raw)
    if meta.get("format") not in READABLE_FORMATS:
        raise InputError(f"{path}: baseline format {meta.get('format')} not in {READABLE_FORMATS}")
    for col in ("sample_block", "sample_us"):
        if col not in table.column_names:
            raise InputError(f"{path}: missing column {col}")
    frame = table.to_pandas()
    _check_columns(frame, REQUIRED_ROW_COLUMNS, str(path))
    parts = []
    for rec in frame[list(ROW_KEY) + ["sample_block", "sample_us"]].itertuples(index=False):
        blocks, values = rec.sample_block, rec.sample_us
        if blocks is None or len(blocks) == 0:
            continue
        part = pd.DataFrame({"block": np.asarray(blocks), "sample_us": np.asarray(values)})
        for col in ROW_KEY:
            part[col] = getattr(rec, col)
        parts.append(part)
    samples = (
        _normalise_samples(pd.concat(parts, ignore_index=True)[list(REQUIRED_SAMPLE_COLUMNS)])
        if parts
        else _empty_samples()
    )
    rows = _normalise_rows(frame.drop(columns=["sample_block", "sample_us"]))
    return RunData(rows, samples, meta["env"], str(path), bool(meta.get("has_samples", True)), meta)
