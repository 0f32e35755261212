"""scripts/gpu_check.sh without a GPU: a fake python stands in for every stage, so the stage
logic (caps, logs, a failing stage not stopping the next, what comes back) is known to work
before a GPU lease is spent on it."""
from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ["cuda_tests", "nightly_bf16", "nightly_fp16", "kernels", "attribution", "gate"]

# Prints its arguments; the CUDA tests hang past their cap after some output; fp16 fails.
FAKE_PY = """#!/bin/sh
echo "fakepy $*"
case "$*" in
  *"-m pytest"*) echo "3 passed so far"; sleep 30 ;;
  *"--dtypes float16"*) echo "fp16 boom" >&2; exit 3 ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("night")
    fake = tmp / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    out, work = tmp / "out", tmp / "work"
    env = dict(os.environ, PY=str(fake), OUT=str(out), WORK=str(work), CUDA_TESTS_S="2")
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    return proc, out, work


def _stage_lines(out: Path) -> dict[str, int]:
    found = re.findall(r"^stage (\w+)\s+rc=(\d+)", (out / "summary.txt").read_text(), re.MULTILINE)
    return {name: int(rc) for name, rc in found}


def test_every_stage_runs_in_order_whatever_the_earlier_ones_did(night):
    proc, out, _ = night
    assert proc.returncode == 0, proc.stderr
    stages = _stage_lines(out)
    assert list(stages) == STAGES
    assert stages["cuda_tests"] == 124          # cut at its cap
    assert stages["nightly_fp16"] == 3          # failed
    assert stages["kernels"] == stages["attribution"] == stages["gate"] == 0


def test_a_stage_cut_at_its_cap_keeps_its_output(night):
    _, out, _ = night
    log = (out / "cuda_tests.log").read_text()
    assert "3 passed so far" in log and "cut at its 2s cap" in log
    assert "-m cuda" in log
    assert "fp16 boom" in (out / "nightly_fp16.log").read_text()


def test_stages_ask_for_both_dtypes_trimmed_tokens_kernels_and_attribution(night):
    _, out, work = night
    assert f"--out {work}/nightly_bf16 --suite nightly --dtypes bfloat16 --tokens 1 4096" in \
        (out / "nightly_bf16.log").read_text()
    assert "--dtypes float16 --tokens 1 4096" in (out / "nightly_fp16.log").read_text()
    assert "--suite kernels" in (out / "kernels.log").read_text()
    attribution = (out / "attribution.log").read_text()
    assert "--attribution" in attribution and "--workloads donated_chain llama_block rotary_views" in attribution


def test_the_gate_stage_freezes_a_baseline_and_gates_the_night_against_it(night):
    _, out, work = night
    log = (out / "gate.log").read_text()
    baseline = re.search(r"harness baseline --run \S+/night --out (\S+)", log)
    assert baseline and re.fullmatch(r".*/baseline_[a-z0-9-]+\.parquet", baseline.group(1))
    assert f"harness gate --baseline {baseline.group(1)} --run {work}/night" in log
    assert "A/A gate exit 0" in log


def test_what_comes_back_fits_a_lease(night):
    """At most 8 files under $OUT; the run directories travel in one archive."""
    _, out, _ = night
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and "night.tgz" in files and "summary.txt" in files
    assert {f"{s}.log" for s in STAGES} <= set(files)
    with tarfile.open(out / "night.tgz") as tar:
        tar.getnames()  # a readable archive
    assert "versions" in (out / "summary.txt").read_text()


def test_default_caps_fit_eight_minutes():
    """Stage caps + kill grace (5 s each) + the version probe (30 s) stay within 480 s."""
    text = SCRIPT.read_text()
    caps = [int(c) for c in re.findall(r'stage \w+ "\$\{\w+_S:-(\d+)\}"', text)]
    assert len(caps) == len(STAGES)
    assert "timeout -k 5" in text and "timeout 30" in text
    assert sum(caps) + 5 * len(caps) + 30 <= 480
