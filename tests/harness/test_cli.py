"""The CLI: subcommand wiring, a compile-free run, merge, clear errors."""
from __future__ import annotations

import pandas as pd
import pytest

from harness import cli
from harness.store import results
from harness.run import suites


def test_every_command_is_registered_by_the_cli_itself():
    names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert names == {"run", "merge", "gate", "baseline", "report", "nightly"}


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["gate", "--run", "x"])  # --baseline missing
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2


def test_run_then_shards_then_merge_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(suites.PLANS, "smoke", suites.PLANS["test"])  # keep it quick
    base = ["run", "--suite", "smoke", "--device", "cpu", "--workloads", "rms_norm", "fused_add_rms_norm",
            "--variants", "eager,ideal", "--tokens", "4", "8", "--no-progress"]
    assert cli.main(base + ["--out", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out
    assert "rms_norm" in out and "speedup" in out and "GB/s" in out
    full = results.read_run(tmp_path / "full")[0]
    assert len(full) == 2 * 2 * 2

    for k in (1, 2):
        assert cli.main(base + ["--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]) == 0
    parts = [results.read_run(tmp_path / f"s{k}")[0] for k in (1, 2)]
    assert all(len(p) for p in parts)
    assert cli.main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")]) == 0
    merged = results.read_run(tmp_path / "m")[0]
    key = list(results.ROW_KEY)
    pd.testing.assert_frame_equal(merged[key].sort_values(key).reset_index(drop=True),
                                  full[key].sort_values(key).reset_index(drop=True))


def test_skip_workloads_leaves_out_exactly_those():
    """A lease measures the workloads it must first, then the rest: the two runs cover the
    suite once, with no case in both."""
    from workloads.catalog import all_workloads

    catalog = all_workloads()
    first = ["fused_add_rms_norm", "llama_block"]
    every = suites.case_matrix(catalog, "smoke")
    picked = suites.case_matrix(catalog, "smoke", only=first)
    rest = suites.case_matrix(catalog, "smoke", skip=first)
    assert {c.workload for c in picked} == set(first)
    assert not {c.workload for c in rest} & set(first)
    assert sorted(c.key for c in picked + rest) == sorted(c.key for c in every)
    assert suites.case_matrix(catalog, "smoke", only=first, skip=first) == []


def test_bad_arguments_fail_clearly(tmp_path, capsys, monkeypatch):
    assert cli.main(["run", "--device", "cpu", "--workloads", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown workloads" in capsys.readouterr().err
    assert cli.main(["run", "--device", "cpu", "--skip-workloads", "nope", "--out", str(tmp_path / "z")]) == 2
    assert "unknown workloads ['nope']" in capsys.readouterr().err
    assert cli.main(["run", "--device", "cpu", "--workloads", "rms_norm", "--skip-workloads", "rms_norm",
                     "--out", str(tmp_path / "w")]) == 2
    assert "no cases to run" in capsys.readouterr().err
    assert cli.main(["run", "--device", "cpu", "--shard", "3/2", "--out", str(tmp_path / "y")]) == 2
    monkeypatch.chdir(tmp_path)
    assert cli.main(["merge", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "results").exists(), "a failed merge must not leave a run directory"


def test_an_interrupted_run_writes_the_cases_that_finished(tmp_path):
    from harness.run import api

    def progress(done, total, case, rows):
        if done == 1:
            raise KeyboardInterrupt

    result = api.run(suite="smoke", device="cpu", workloads=["rms_norm"], tokens=[4, 8], variants=["eager"],
                     out=tmp_path / "run", plan=suites.PLANS["test"], progress=progress)
    df, _, env = results.read_run(tmp_path / "run")
    assert env["interrupted"] is True and len(df) == 1 and len(result.results) == 1
