"""Results schema, GB/s arithmetic, atomic never-overwriting writes, read-back."""
from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest

from harness.store import results as res

INTERFACE_COLUMNS = ("workload variant dtype num_tokens hidden device clones_before clones_after kernels "
                     "bytes_accessed model_bytes latency_us_p50 latency_us_p20 latency_us_p80 gbps "
                     "pct_of_peak max_abs_err bitwise_equal ok error model device_name suite compile_s "
                     "block_count").split()


def _row(**kw) -> res.Row:
    base = dict(workload="w", variant="lowered", dtype="float32", num_tokens=8, hidden=64, model="m",
                model_bytes=2_000_000, latency_us_p50=1000.0, block_count=3, clones_before=1,
                clones_after=0, kernels=2, bytes_accessed=123)
    base.update(kw)
    return res.Row(**base)


def test_gbps_is_model_bytes_over_p50():
    # 2 MB in 1 ms = 2 GB/s
    assert res.gbps(2_000_000, 1000.0) == pytest.approx(2.0)
    assert math.isnan(res.gbps(None, 1000.0))
    assert math.isnan(res.gbps(100, float("nan")))
    assert math.isnan(res.gbps(100, 0.0))


def test_pct_of_peak_uses_the_measured_ceiling():
    assert res.pct_of_peak(1500.0, 3000.0) == pytest.approx(50.0)
    assert math.isnan(res.pct_of_peak(1.0, None))


def test_frame_has_interface_columns_and_types():
    df = res.rows_to_frame([_row(), _row(variant="ideal", clones_before=None, bitwise_equal=True)], 4.0)
    assert set(INTERFACE_COLUMNS) <= set(df.columns)
    assert df["gbps"].tolist() == pytest.approx([2.0, 2.0])
    assert df["pct_of_peak"].tolist() == pytest.approx([50.0, 50.0])
    assert str(df["clones_before"].dtype) == "Int64" and df["clones_before"].isna().tolist() == [False, True]
    assert str(df["bitwise_equal"].dtype) == "boolean"
    assert df["ok"].dtype == bool and df["dtype"].tolist() == ["float32", "float32"]


def test_fail_and_skip_follow_the_status_convention():
    r = _row().fail("numerics").fail("inputs")
    assert (r.ok, r.status, r.error) == (False, "fail", "numerics; inputs")
    s = _row().skip("no triton")
    assert (s.ok, s.status, s.error) == (True, "skipped", "skipped: no triton")


def test_run_dir_names_are_fresh_and_never_reused(tmp_path):
    now = dt.datetime(2026, 11, 27, 1, 2, 3, tzinfo=dt.timezone.utc)
    a = res.new_run_dir(tmp_path, "abc1234", now)
    b = res.new_run_dir(tmp_path, "abc1234", now)
    assert a.name == "20261127T010203Z_abc1234" and b.name == "20261127T010203Z_abc1234-2"


def test_write_run_round_trips_and_refuses_to_overwrite(tmp_path):
    df = res.rows_to_frame([_row(), _row(variant="cleanpass")], 4.0)
    samples = res.samples_frame([dict(workload="w", variant=v, dtype="float32", num_tokens=8, hidden=64,
                                      device="cpu", device_name="x", block=b, sample_us=10.0 + b)
                                 for v in ("lowered", "cleanpass") for b in range(3)])
    env = {"device": "cpu", "device_name": "x", "peak_gbps_measured": 4.0, "commit": "abc", "utc": "now"}
    res.write_run(tmp_path, df, samples, env)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(res.RESULT_FILES)
    back, s_back, env_back = res.read_run(tmp_path)
    pd.testing.assert_frame_equal(back.drop(columns="run_id"), df.drop(columns="run_id"))
    # every row names its run and the schema it was written with
    assert set(back["run_id"]) == {tmp_path.name} and env_back["run_id"] == tmp_path.name
    assert set(back["schema_version"]) == {res.SCHEMA_VERSION}
    assert len(s_back) == 6 and env_back["peak_gbps_measured"] == 4.0
    csv = pd.read_csv(tmp_path / "results.csv")
    assert list(csv.columns) == list(df.columns)
    bench = json.loads((tmp_path / "benchmark.json").read_text())
    assert {b["name"] for b in bench["benchmarks"]} == {"w[m-64-8-float32-lowered]", "w[m-64-8-float32-cleanpass]"}
    st = bench["benchmarks"][0]["stats"]
    assert st["rounds"] == 3 and st["median"] == pytest.approx(11e-6)
    with pytest.raises(FileExistsError):
        res.write_run(tmp_path, df, samples, env)
    with pytest.raises(FileExistsError):
        res.claim_out_dir(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_copies_is_a_nullable_count_and_older_files_read_back_without_it():
    df = res.rows_to_frame([_row(copies=0), _row(variant="ideal")], 4.0)
    assert str(df["copies"].dtype) == "Int64" and df["copies"].isna().tolist() == [False, True]
    old = res.normalize_frame(df.drop(columns="copies"))  # a file written before the column
    assert str(old["copies"].dtype) == "Int64" and old["copies"].isna().all()
