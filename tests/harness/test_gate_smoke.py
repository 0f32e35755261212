"""The CI gate on a real smoke run (CPU), end to end through ``python -m harness``.

A small real run (one workload, two variants: ~30 s) is frozen as a baseline, gated against
itself (passes), then a copy with a clone left behind is gated (fails with a readable line).
The full smoke suite against the committed ``results/baselines/cpu.parquet`` is the CI step
(``scripts/ci_smoke_gate.sh``), not this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.judge.gate import DTYPE_SHORT

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _harness(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke_gate")
    run = root / "run"
    done = _harness("run", "--suite", "smoke", "--device", "cpu", "--workloads", "rms_norm",
                    "--variants", "lowered", "cleanpass", "--out", str(run), "--no-progress")
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: some rows failed validation
    assert (run / "env.json").is_file(), done.stderr[-3000:]
    base = root / "cpu.parquet"
    done = _harness("baseline", "--run", str(run), "--out", str(base))
    assert done.returncode == 0, done.stdout + done.stderr
    return run, base


def test_smoke_run_passes_against_its_own_baseline(smoke):
    run, base = smoke
    done = _harness("gate", "--baseline", str(base), "--run", str(run))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate PASS" in done.stdout and "latency not gated" in done.stdout


def test_clone_left_behind_fails_ci_with_readable_message(smoke, tmp_path):
    run, base = smoke
    bad = tmp_path / "bad_run"
    shutil.copytree(run, bad)
    rows = pd.read_parquet(bad / "results.parquet")
    target = rows.index[(rows.variant == "cleanpass") & rows.clones_after.notna()][0]
    before = int(rows.loc[target, "clones_after"])
    rows.loc[target, "clones_after"] = before + 1
    rows.to_parquet(bad / "results.parquet", index=False)

    done = _harness("gate", "--baseline", str(base), "--run", str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    r = rows.loc[target]
    expected = f"REGRESSION cleanpass rms_norm {DTYPE_SHORT[r['dtype']]} T={r['num_tokens']} H={r['hidden']}: "
    line = next(l for l in done.stdout.splitlines() if l.startswith("REGRESSION"))
    assert line.startswith(expected), line
    assert line.endswith(f"clones_after {before} -> {before + 1} (the pass left a clone it used to remove)")


def test_gate_refuses_a_baseline_from_another_device(smoke, tmp_path):
    run, base = smoke
    other = tmp_path / "gpu_run"
    shutil.copytree(run, other)
    env = (other / "env.json").read_text().replace('"device": "cpu"', '"device": "cuda"')
    (other / "env.json").write_text(env)
    done = _harness("gate", "--baseline", str(base), "--run", str(other))
    assert done.returncode == 2 and "device type differs" in done.stdout
