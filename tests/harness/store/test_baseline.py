"""Baseline files: one parquet with rows, per-row raw samples and the env; written atomically,
never replaced by accident."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.store.baseline import META_KEY, InputError, load_baseline, load_run, write_baseline
from harness.store.results import ROW_KEY
from tests.harness.cli_calls import call
from tests.harness.harness_synth import synth_run


def _cli(*argv: str) -> tuple[int, list[str]]:
    return call("baseline", *argv)


def test_round_trip_keeps_rows_samples_and_env(tmp_path):
    run = load_run(synth_run(tmp_path / "r", seed=4))
    back = load_baseline(write_baseline(run, tmp_path / "b.parquet"))
    assert back.env == run.env
    pd.testing.assert_frame_equal(
        back.rows[run.rows.columns].reset_index(drop=True), run.rows.reset_index(drop=True),
        check_dtype=False)
    assert len(back.samples) == len(run.samples)
    for key in run.rows[list(ROW_KEY)].head(3).itertuples(index=False, name=None):
        pd.testing.assert_series_equal(
            run.samples_for(key).sort_values("block")["sample_us"].reset_index(drop=True),
            back.samples_for(key)["sample_us"].reset_index(drop=True))


def test_file_layout_is_rows_with_sample_lists_and_env_metadata(tmp_path):
    out = write_baseline(load_run(synth_run(tmp_path / "r")), tmp_path / "b.parquet")
    table = pq.read_table(out)
    assert table.schema.field("sample_us").type.value_type == pa.float64()
    assert table.schema.field("sample_block").type.value_type == pa.int64()
    meta = json.loads(table.schema.metadata[META_KEY])
    assert meta["format"] == 2 and meta["env"]["device"] == "cuda"
    assert table.num_rows == 12 and all(len(v) == 40 for v in table.column("sample_us").to_pylist())


def test_refuses_to_overwrite_without_refresh_and_reason(tmp_path):
    run = synth_run(tmp_path / "r")
    out = tmp_path / "b.parquet"
    assert _cli("--run", str(run), "--out", str(out))[0] == 0
    code, lines = _cli("--run", str(run), "--out", str(out))
    assert code == 2 and "--refresh --reason" in lines[0]
    code, lines = _cli("--run", str(run), "--out", str(out), "--refresh")
    assert code == 2 and "needs --reason" in lines[0]
    assert _cli("--run", str(run), "--out", str(out), "--force", "--reason", "r")[0] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_run_without_samples_still_makes_a_baseline(tmp_path):
    run_dir = synth_run(tmp_path / "r", device="cpu", device_name="x86_64")
    (run_dir / "samples.parquet").unlink()
    back = load_baseline(write_baseline(load_run(run_dir), tmp_path / "b.parquet"))
    assert back.samples.empty and not back.has_samples


def test_plain_parquet_is_not_a_baseline(tmp_path):
    run_dir = synth_run(tmp_path / "r")
    with pytest.raises(InputError, match="not a cleanpass baseline"):
        load_baseline(run_dir / "results.parquet")
