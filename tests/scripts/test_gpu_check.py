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
STAGES = ["headline", "cuda_tests", "nightly", "kernels", "attribution", "gate"]
HEADLINE = re.search(r'HEADLINE=\$\{HEADLINE:-"([^"]+)"\}', SCRIPT.read_text()).group(1)

# Prints its arguments; the CUDA tests hang past their cap after some output; the rest of the
# nightly suite fails.
FAKE_PY = r"""#!/bin/sh
echo "fakepy $*"
case "$*" in
  *"-m pytest"*) echo "3 passed so far"; sleep 30 ;;
  *"--skip-workloads"*) echo "nightly boom" >&2; exit 3 ;;
  *"harness merge"*) [ -n "${FAKE_FAIL_MERGE:-}" ] && { echo "merge boom" >&2; exit 4; } ;;
  *"harness report --run"*)
    dir=$(echo "$*" | sed 's/.*--run \([^ ]*\).*/\1/'); mkdir -p "$dir"
    printf '## Run\n\n## Headline\n\n| fake headline |\n\n## Latency against token count\n' >"$dir/report.md" ;;
esac
exit 0
"""


def _run_script(tmp: Path, **extra_env: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    fake = tmp / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(0o755)
    out, work = tmp / "out", tmp / "work"
    env = dict(os.environ, PY=str(fake), OUT=str(out), WORK=str(work), CUDA_TESTS_S="2", **extra_env)
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    return proc, out, work


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    return _run_script(tmp_path_factory.mktemp("night"))


def _stage_lines(out: Path) -> dict[str, int]:
    found = re.findall(r"^stage (\w+)\s+rc=(\d+)", (out / "summary.txt").read_text(), re.MULTILINE)
    return {name: int(rc) for name, rc in found}


def test_every_stage_runs_in_order_whatever_the_earlier_ones_did(night):
    proc, out, _ = night
    assert proc.returncode == 0, proc.stderr
    stages = _stage_lines(out)
    assert list(stages) == STAGES
    assert stages["cuda_tests"] == 124          # cut at its cap
    assert stages["nightly"] == 3               # failed
    assert stages["headline"] == stages["kernels"] == stages["attribution"] == stages["gate"] == 0


def test_a_stage_cut_at_its_cap_keeps_its_output(night):
    _, out, _ = night
    log = (out / "cuda_tests.log").read_text()
    assert "3 passed so far" in log and "cut at its 2s cap" in log
    assert "-m cuda" in log
    assert "nightly boom" in (out / "nightly.log").read_text()


def test_the_headline_runs_first_at_full_size_and_the_rest_runs_without_it(night):
    """The workloads issue figures are quoted on (70B fused add + RMSNorm at 16384 tokens, bf16,
    among them) run before anything a cap could cut; the rest of the night covers every other
    workload and the headline's fp16 cases, trimmed to fewer token counts, never to fewer dtypes."""
    _, out, work = night
    assert (f"--out {work}/headline --suite nightly --dtypes bfloat16 --tokens 1 4096 16384 "
            f"--workloads {HEADLINE}") in (out / "headline.log").read_text()
    rest = (out / "nightly.log").read_text()
    assert (f"--out {work}/nightly --suite nightly --dtypes bfloat16 float16 --tokens 1 4096 "
            f"--skip-workloads {HEADLINE}") in rest
    # the headline's fp16 cases still run, after the other workloads, though those failed here
    assert f"--out {work}/headline_fp16 --suite nightly --dtypes float16 --tokens 1 4096 --workloads {HEADLINE}" in rest


def test_the_headline_shapes_are_in_the_nightly_grid():
    """Every headline workload is a real catalog entry, and the shape the figures are quoted on
    (llama-3.1-70b at 16384 tokens, bf16) is one the nightly suite knows."""
    from harness.run import suites
    from workloads.catalog import all_workloads

    catalog = all_workloads()
    cases = suites.case_matrix(catalog, "nightly", only=HEADLINE.split(), dtypes=[suites.parse_dtype("bf16")],
                               tokens=[1, 4096, 16384])
    assert {c.workload for c in cases} == set(HEADLINE.split())
    assert any(c.workload == "fused_add_rms_norm" and c.shape.model == "llama-3.1-70b"
               and c.shape.num_tokens == 16384 for c in cases)


def test_kernels_and_attribution_stages(night):
    _, out, _ = night
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


def test_the_headline_table_ends_the_summary(night):
    """The lease's reply shows the tail of its output: the night report's Headline section is
    copied into summary.txt, and nothing after it."""
    _, out, _ = night
    summary = (out / "summary.txt").read_text()
    assert "## Headline" in summary and "| fake headline |" in summary
    assert "Latency against token count" not in summary
    assert summary.index("| fake headline |") < summary.index("total ")


def test_a_failed_merge_still_brings_back_the_headline_runs_table(tmp_path):
    """Where the night's parts cannot be merged, the gate stage fails, and the headline run's
    own report still ends the summary."""
    (tmp_path / "work" / "headline").mkdir(parents=True)
    (tmp_path / "work" / "headline" / "env.json").write_text("{}")  # the headline run finished
    proc, out, work = _run_script(tmp_path, FAKE_FAIL_MERGE="1")
    assert proc.returncode == 0, proc.stderr
    assert _stage_lines(out)["gate"] == 1
    assert f"harness report --run {work}/headline" in (out / "gate.log").read_text()
    assert "| fake headline |" in (out / "summary.txt").read_text()


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
