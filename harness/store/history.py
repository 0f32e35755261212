"""Every stored run in one tidy DataFrame: the rows of all runs, with each run's env joined.

Why: reviewers read the nightly history in pandas, and the trend judges it; both need the same
table without hand-written glue. One line per result row; ``run_id`` (the run directory's name)
and ``schema_version`` are on every line (runs written before those columns existed get the
directory name and schema version 1); every scalar ``env.json`` field is joined as an
``env_<field>`` column, and ``run_utc`` is the run's start time as a timestamp.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd

from harness.store.results import LEGACY_SCHEMA_VERSION

log = logging.getLogger(__name__)

ENV_PREFIX = "env_"


def run_dirs(folder: str | os.PathLike) -> list[Path]:
    """Complete run directories (``env.json`` + ``results.parquet``) anywhere under ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.parent for p in folder.rglob("env.json") if (p.parent / "results.parquet").is_file())


def _env_columns(env: dict) -> dict:
    return {f"{ENV_PREFIX}{k}": v for k, v in env.items()
            if v is None or isinstance(v, (str, int, float, bool))}


def load_one(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One run's rows with ``run_id``, ``schema_version``, ``run_dir``, ``run_utc`` and env columns."""
    run_dir = Path(run_dir)
    rows = pd.read_parquet(run_dir / "results.parquet")
    env = json.loads((run_dir / "env.json").read_text())
    if "run_id" not in rows.columns:
        rows["run_id"] = run_dir.name
    rows["run_id"] = rows["run_id"].fillna("").astype(str).replace("", run_dir.name)
    if "schema_version" not in rows.columns:
        rows["schema_version"] = LEGACY_SCHEMA_VERSION
    rows["schema_version"] = rows["schema_version"].fillna(LEGACY_SCHEMA_VERSION).astype("int64")
    rows["run_dir"] = str(run_dir)
    rows["run_utc"] = pd.to_datetime(env.get("utc"), utc=True, errors="coerce")
    for col, value in _env_columns(env).items():
        rows[col] = value
    return rows


def load_runs(folder: str | os.PathLike = "results/runs") -> pd.DataFrame:
    """Every run under ``folder`` as one DataFrame, oldest run first (see the module docstring).

    An unreadable run is logged and left out; an empty folder gives an empty frame."""
    frames = []
    for run_dir in run_dirs(folder):
        try:
            frames.append(load_one(run_dir))
        except (OSError, ValueError) as exc:
            log.warning("history: skipping %s: %s", run_dir, exc)
        except Exception as exc:  # noqa: BLE001  pyarrow raises several types for a corrupt file
            log.warning("history: skipping unreadable %s: %s", run_dir, exc)
    if not frames:
        return pd.DataFrame(columns=["run_id", "schema_version", "run_dir", "run_utc"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    return out.sort_values(["run_utc", "run_id"], kind="stable", na_position="first").reset_index(drop=True)
