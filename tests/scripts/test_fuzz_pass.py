"""scripts/fuzz_pass.py: fresh random programs through the property bodies; a sound run passes
and says what it checked, and the reference policy, fuzzed the same way, is caught."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fuzz_pass.py"


def _fuzz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_the_sound_policy_survives_fresh_programs_in_every_mode():
    proc = _fuzz("--programs", "15", "--seed", "11")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "policy sound, seed 11" in out
    for line in ("fake: 15 programs", "real: 15 programs traced on real and on fake tensors, decided alike",
                 "oblivious: 15 programs", "strided: 15 programs (seeds 11..25)"):
        assert line in out
    assert out.count("0 miscompiles") == 4
    assert "sound removed at least as many on" in out and "left no copy of a clone vllm removed on" in out


def test_the_reference_policy_is_caught_with_a_way_to_rerun_it():
    proc = _fuzz("--programs", "80", "--seed", "7", "--modes", "fake", "--policy", "vllm")
    assert proc.returncode == 1
    assert "fake: FAILED (rerun: --seed 7 --modes fake --policy vllm)" in proc.stderr
    assert "differs" in proc.stderr or "AssertionError" in proc.stderr


def test_unknown_modes_are_a_usage_error():
    proc = _fuzz("--modes", "fake,nope")
    assert proc.returncode == 2 and "unknown modes ['nope']" in proc.stderr
