"""scripts/land_gpu_night.sh: what a gpu_check.sh lease brings back becomes committed run
directories and a GPU baseline, readable by the harness, never overwriting an earlier night."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from harness.store.baseline import load_run, write_baseline
from tests.harness.harness_synth import synth_run

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "land_gpu_night.sh"
GPU = "h100-80gb-hbm3"


def _lease(tmp: Path, parts: tuple[str, ...] = ("night", "attribution")) -> Path:
    """A folder as a lease leaves it: night.tgz (run directories, baseline), summary, logs."""
    work, back = tmp / "work", tmp / "back"
    back.mkdir(parents=True)
    for part in parts:
        synth_run(work / part, utc="2026-11-28T01:02:03+00:00")
    if "night" in parts:
        write_baseline(load_run(work / "night"), work / f"baseline_{GPU}.parquet")
    with tarfile.open(back / "night.tgz", "w:gz") as tar:
        tar.add(work, arcname=".")
    (back / "summary.txt").write_text("== versions\nstage headline rc=0 100s\n")
    (back / "headline.log").write_text("headline stage output\n")
    return back


def _land(back: Path, root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LAND_ROOT=str(root), PY=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), str(back)], env=env, capture_output=True, text=True, timeout=60)


def test_a_lease_lands_as_run_directories_and_a_baseline(tmp_path):
    back, root = _lease(tmp_path), tmp_path / "repo"
    proc = _land(back, root)
    assert proc.returncode == 0, proc.stderr
    night = root / "results" / "runs" / f"20261128T010203Z_{GPU}-night"
    assert len(load_run(night).rows) > 0
    assert (root / "results" / "runs" / f"20261128T010203Z_{GPU}-attribution" / "env.json").exists()
    assert not (root / "results" / "runs" / f"20261128T010203Z_{GPU}-kernels").exists()
    log = (night / "device_log.txt").read_text()
    assert "===== summary.txt" in log and "===== headline.log" in log and "headline stage output" in log
    baseline = root / "results" / "baselines" / f"{GPU}.parquet"
    assert baseline.read_bytes() == (tmp_path / "work" / f"baseline_{GPU}.parquet").read_bytes()


def test_an_earlier_night_is_never_overwritten(tmp_path):
    back, root = _lease(tmp_path), tmp_path / "repo"
    assert _land(back, root).returncode == 0
    again = _land(back, root)
    assert again.returncode == 1 and "not overwriting" in again.stderr


@pytest.mark.parametrize("what", ["no_tgz", "no_night"])
def test_a_lease_without_a_night_is_refused_clearly(tmp_path, what):
    back = _lease(tmp_path, parts=("kernels",))
    if what == "no_tgz":
        (back / "night.tgz").unlink()
    proc = _land(back, tmp_path / "repo")
    assert proc.returncode == 2 and "land_gpu_night:" in proc.stderr
    assert not (tmp_path / "repo" / "results").exists()  # nothing half-landed
