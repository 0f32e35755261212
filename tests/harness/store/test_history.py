"""History in pandas: every run under a folder in one DataFrame, run id, schema and env joined."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.store import results as res
from harness.store.baseline import load_run
from harness.store.history import load_runs
from tests.harness.harness_synth import make_env, make_rows, make_samples, synth_run

RUNS = Path(__file__).resolve().parents[3] / "results" / "runs"
OLD_RUN = RUNS / "20261127T014611Z_h100-nightly-bf16"


def _new_run(folder: Path, utc: str) -> Path:
    """A run written by the current writer (stamps run_id and schema_version)."""
    rows = make_rows(device="cpu", device_name="AMD EPYC")
    run_dir = folder / "nested" / "20261128T000000Z_new"
    run_dir.mkdir(parents=True)
    res.write_run(run_dir, rows, make_samples(rows), make_env("cpu", "AMD EPYC", utc=utc))
    return run_dir


def test_every_run_in_one_frame_with_run_id_schema_and_env(tmp_path):
    old = synth_run(tmp_path / "20261126T000000Z_old", utc="2026-11-26T00:00:00Z")  # no run_id column
    new = _new_run(tmp_path, "2026-11-28T00:00:00Z")
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "env.json").write_text("{}")
    (tmp_path / "broken" / "results.parquet").write_text("not parquet")

    df = load_runs(tmp_path)
    assert list(df["run_id"].unique()) == [old.name, new.name]  # oldest first, broken left out
    per_run = df.groupby("run_id")["schema_version"].unique().map(list).to_dict()
    assert per_run == {old.name: [res.LEGACY_SCHEMA_VERSION], new.name: [res.SCHEMA_VERSION]}
    assert set(df["env_torch"]) == {"2.13.0"} and set(df["env_device"]) == {"cuda", "cpu"}
    assert df["run_utc"].is_monotonic_increasing and str(df["run_utc"].dt.tz) == "UTC"
    assert len(df) == len(pd.read_parquet(old / "results.parquet")) + len(pd.read_parquet(new / "results.parquet"))


def test_committed_runs_load_old_and_new_alike():
    df = load_runs(RUNS)
    old = df[df["run_id"] == OLD_RUN.name]
    assert len(old) == len(pd.read_parquet(OLD_RUN / "results.parquet"))
    assert set(old["schema_version"]) == {res.LEGACY_SCHEMA_VERSION}
    assert set(old["env_device"]) == {"cuda"}
    assert load_run(OLD_RUN).rows["workload"].notna().all()  # the gate's reader still takes it


def test_empty_or_missing_folder_is_an_empty_frame(tmp_path):
    assert load_runs(tmp_path).empty and load_runs(tmp_path / "missing").empty
