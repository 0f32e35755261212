"""Nightly trend rule on a synthetic history: median of recent runs on the same GPU model,
flagged only after two consecutive violations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.store.baseline import load_run
from harness.judge.gate import Level
from harness.judge.trend import TrendConfig, discover_history, trend
from tests.harness.cli_calls import call
from tests.harness.harness_synth import make_rows, synth_run


def _night(history: Path, day: int, *, edit=None, slowdown=None, device_name=None, shard=None,
           seed=None) -> Path:
    kw = {"device_name": device_name} if device_name else {}
    rows = make_rows(suite="nightly", **kw)
    if edit:
        rows = edit(rows)
    run = synth_run(history / f"2026110{day}T020000Z_abc{day}{'_' + device_name[:4] if device_name else ''}",
                    rows=rows, seed=seed if seed is not None else day, slowdown=slowdown,
                    utc=f"2026-11-0{day}T02:00:00+00:00", suite="nightly", **kw)
    if shard:
        env = json.loads((run / "env.json").read_text())
        env["shard"] = shard
        (run / "env.json").write_text(json.dumps(env))
    return run


def _leave_clone(rows):
    sel = (rows.variant == "cleanpass") & (rows.workload == "rms_norm") & (rows.num_tokens == 32)
    rows.loc[sel, "clones_after"] = 1
    return rows


def _cli(*argv: str) -> tuple[int, list[str]]:
    return call("nightly", *argv)


def _judge(history: Path, run: Path):
    cur = load_run(run)
    return trend(cur, discover_history(history, cur), TrendConfig())


def test_clean_history_passes(tmp_path):
    for day in range(1, 6):
        last = _night(tmp_path, day)
    res = _judge(tmp_path, last)
    assert res.exit_code == 0
    assert [f for f in res.findings if f.level is not Level.NOTE] == []
    assert len(res.history_used) == 4


def test_regression_is_flagged_on_the_second_night_only(tmp_path):
    for day in range(1, 5):
        _night(tmp_path, day)
    first = _night(tmp_path, 5, edit=_leave_clone)
    res = _judge(tmp_path, first)
    assert res.exit_code == 0
    warns = [f for f in res.findings if f.level is Level.WARN]
    assert len(warns) == 1 and warns[0].metric == "clones_after"
    assert "first night" in warns[0].line()

    second = _night(tmp_path, 6, edit=_leave_clone)
    res = _judge(tmp_path, second)
    assert res.exit_code == 1
    line = [f.line() for f in res.findings if f.level is Level.REGRESSION][0]
    assert line.startswith("REGRESSION cleanpass rms_norm bf16 T=32 H=4096: clones_after 0 -> 1")
    assert "second night in a row" in line


def _copies(value_of_cleanpass_rms_norm_32):
    def edit(rows):
        rows["copies"] = (rows["clones_after"] > 0).astype(int)
        sel = (rows.variant == "cleanpass") & (rows.workload == "rms_norm") & (rows.num_tokens == 32)
        rows.loc[sel, "copies"] = value_of_cleanpass_rms_norm_32
        return rows
    return edit


def test_copies_growing_two_nights_fails_and_older_nights_are_no_reference(tmp_path):
    for day in range(1, 4):
        _night(tmp_path, day)  # written before the column existed
    assert _judge(tmp_path, _night(tmp_path, 4, edit=_copies(3))).exit_code == 0  # nothing to compare
    for day in range(5, 8):
        _night(tmp_path, day, edit=_copies(0))
    _night(tmp_path, 8, edit=_copies(2))
    res = _judge(tmp_path, _night(tmp_path, 9, edit=_copies(2)))
    bad = [f.line() for f in res.findings if f.level is Level.REGRESSION]
    assert res.exit_code == 1 and len(bad) == 1 and ": copies 0 -> 2" in bad[0]


def test_one_noisy_night_never_fails(tmp_path):
    for day in range(1, 5):
        _night(tmp_path, day)
    _night(tmp_path, 5, slowdown={"cleanpass": 1.3})  # a bad night ...
    res = _judge(tmp_path, _night(tmp_path, 6))  # ... then back to normal
    assert res.exit_code == 0


def test_latency_regression_two_nights_fails(tmp_path):
    for day in range(1, 5):
        _night(tmp_path, day)
    _night(tmp_path, 5, slowdown={"cleanpass": 1.3})
    res = _judge(tmp_path, _night(tmp_path, 6, slowdown={"cleanpass": 1.3}))
    assert res.exit_code == 1
    bad = [f for f in res.findings if f.level is Level.REGRESSION]
    assert bad and all(f.metric == "latency_us_p50" and f.key[1] == "cleanpass" for f in bad)


def test_other_gpu_models_and_shards_are_not_history(tmp_path):
    for day in range(1, 4):
        _night(tmp_path, day, device_name="NVIDIA H200", edit=_leave_clone)
    _night(tmp_path, 4, shard="1/2", edit=_leave_clone)
    for day in (5, 6):
        _night(tmp_path, day, edit=_leave_clone)
    cur = load_run(_night(tmp_path, 7, edit=_leave_clone))
    hist = discover_history(tmp_path, cur)
    assert [name[:9] for name in hist["run_id"].unique()] == ["20261105T", "20261106T"]
    res = trend(cur, hist, TrendConfig())
    assert res.exit_code == 0
    assert any(f.level is Level.NOTE and "only 2 earlier runs" in f.metric for f in res.findings)


def test_cli_judges_a_merged_run_and_writes_report(tmp_path):
    for day in range(1, 5):
        _night(tmp_path, day)
    _night(tmp_path, 5, edit=_leave_clone)
    run = _night(tmp_path, 6, edit=_leave_clone)
    code, lines = _cli("--history", str(tmp_path), "--run", str(run))
    assert code == 1
    assert lines[-1].startswith("nightly FAIL: 1 regressions")
    for name in ("report.md", "report.html", "trend.csv"):
        assert (run / name).is_file()
    assert "Nightly trend" in (run / "report.md").read_text()


def test_cli_refuses_to_judge_a_shard(tmp_path):
    run = _night(tmp_path, 1, shard="2/4")
    code, lines = _cli("--history", str(tmp_path), "--run", str(run))
    assert code == 2 and "merge the shards" in lines[0]


@pytest.mark.parametrize("argv", [["--shard", "1/2"], []])
def test_cli_usage_errors(argv):
    assert _cli(*argv)[0] == 2
