"""The CLI: subcommand wiring, a compile-free run, merge, clear errors."""
from __future__ import annotations

import pandas as pd

import pytest

from harness import cli
from harness.store import results
from harness.run import suites


def test_every_command_is_registered_by_the_cli_itself():
    names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert names == {"run", "keep", "merge", "gate", "baseline", "report", "nightly", "vllm-engine"}


def test_vllm_engine_without_a_vllm_environment_writes_skipped_rows(tmp_path, capsys):
    """`harness vllm-engine` with no vLLM interpreter: every row skipped with the reason, exit 0."""
    missing = str(tmp_path / "no-venv" / "python")
    code = cli.main(["vllm-engine", "--models", "llama", "--dtypes", "float32", "--arms", "no_pass",
                     "cleanpass", "--out", str(tmp_path / "run"), "--python", missing])
    assert code == 0
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(rows) == 2 and set(rows["status"]) == {"skipped"} and set(rows["pipeline"]) == {"vllm-engine"}
    assert "run:" in capsys.readouterr().out


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
    assert cli.main(base + ["--out", str(tmp_path / "full"), "--no-report"]) == 0
    out = capsys.readouterr().out
    # no pass variant ran: the brief says so, and no report was asked for
    assert "(no pass rows measured)" in out and "GB/s" in out and "report:" not in out
    assert f"results: {tmp_path / 'full'}" in out
    full = results.read_run(tmp_path / "full")[0]
    assert len(full) == 2 * 2 * 2

    for k in (1, 2):
        assert cli.main(base + ["--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}"), "--no-report"]) == 0
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


def test_a_run_ends_in_a_brief_the_paths_and_a_report(tmp_path, monkeypatch, capsys):
    """``make bench``'s ending: a short table per workload and dtype, the results folder and the
    report, which the run writes; the ratio lines and the long table only with ``-v``."""
    monkeypatch.setitem(suites.PLANS, "smoke", suites.PLANS["test"])
    argv = ["run", "--suite", "smoke", "--device", "cpu", "--workloads", "rms_norm", "--tokens", "4", "8",
            "--variants", "native", "lowered", "cleanpass", "--no-progress"]
    assert cli.main(argv + ["--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = next(i for i, line in enumerate(lines) if "clones lowered -> cleanpass" in line)
    row = lines[table + 1].split()
    assert row[:5] == ["rms_norm", "float32", "1", "->", "0"] and row[-1] == "yes"
    assert "bytes vs lowered" in lines[table] and "time vs native" in lines[table]
    assert lines[-2] == f"results: {tmp_path / 'a'}"
    assert lines[-1].startswith(f"report:  {tmp_path / 'a' / 'report.md'}")
    assert (tmp_path / "a" / "report.md").is_file() and (tmp_path / "a" / "report.html").is_file()
    assert len(lines) <= 25 and not any("in-run ratios" in line for line in lines)

    assert cli.main(argv + ["--out", str(tmp_path / "b"), "-v"]) == 0
    detail = capsys.readouterr().out
    assert "in-run ratios" in detail and "cleanpass/lowered rms_norm float32 T=8" in detail


def test_local_runs_go_to_a_git_ignored_folder_and_keep_commits_one(tmp_path, monkeypatch, capsys):
    """A run without --out lands in results/local/ (ignored by git: `git status` stays clean);
    `harness keep` copies it into results/runs/, the folder for runs someone commits."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{cli.LOCAL_RUNS}/20260101T000000Z_abc/results.csv"],
                             cwd=repo, check=False)
    assert ignored.returncode == 0, f"{cli.LOCAL_RUNS} must be git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", f"{cli.KEPT_RUNS}/x/results.csv"],
                          cwd=repo, check=False).returncode == 1

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(suites.PLANS, "smoke", suites.PLANS["test"])
    assert cli.main(["run", "--suite", "smoke", "--device", "cpu", "--workloads", "rms_norm", "--tokens", "4",
                     "--variants", "eager", "--no-progress", "--no-report"]) == 0
    made = list((tmp_path / cli.LOCAL_RUNS).iterdir())
    assert len(made) == 1 and not (tmp_path / cli.KEPT_RUNS).exists()
    capsys.readouterr()
    assert cli.main(["keep", str(made[0]), "--name", "my-cpu-run"]) == 0
    kept = tmp_path / cli.KEPT_RUNS / "my-cpu-run"
    assert "git add" in capsys.readouterr().out
    pd.testing.assert_frame_equal(results.read_run(kept)[0], results.read_run(made[0])[0])
    assert cli.main(["keep", str(made[0]), "--name", "my-cpu-run"]) == 2  # never overwritten
    assert cli.main(["keep", str(tmp_path)]) == 2                          # not a run directory
