"""The zoo at a glance: one line per architecture, read back from the zoo's run directories.

`zoo_run` keeps every architecture's full engine table (`zoo.md`); this is the summary the README
shows: clones per piece after lowering, what vLLM's pass and cleanpass leave, what cleanpass
folded, whether both passes generate the no-pass arm's tokens and log-probs bit for bit, and the
reason cleanpass gives for each clone it keeps. An architecture whose no-pass engine ran twice
(`check.run_check` reruns it where an arm differed) and differed from itself is not judged: its
engine is not reproducible without any pass. Architectures that do not start without any clone
pass are listed under the table with the first line of their error.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from harness.store import results
from harness.vllm_engine import check
from harness.vllm_engine.arms import REFERENCE_ARM
from harness.vllm_engine.checks import judge
from harness.vllm_engine.outcome import ArmOutcome, read_arm, repetitions_agree
from harness.vllm_engine.table import clones_cell, render

HEADER = ("architecture", "dtype", "clones lowered (per piece)", "vLLM's pass leaves", "cleanpass leaves",
          "folded", "= no pass (vLLM / cleanpass)", "cleanpass keeps, why")
PASS_ARMS = ("vllm_pass", "cleanpass")


def _arm(out: Path, arch: str, dtype: str, arm: str, rep: int = 0) -> ArmOutcome | None:
    work = Path(out) / arch / check.ENGINE_DIR / f"{arch}-{dtype}" / f"{arm}-{rep}"
    return read_arm(work, arch, dtype, arm) if work.is_dir() else None


def _after(arm: ArmOutcome | None) -> str:
    if arm is None or not arm.ok or not arm.pieces:
        return "-"
    return "/".join(str(p.final) for p in arm.pieces)


def _equal(arm: ArmOutcome | None, by_arm: dict[str, ArmOutcome]) -> str:
    if arm is None or not arm.ok:
        return "failed"
    return {True: "yes", False: "**no**", None: "-"}[judge(arm, by_arm).bitwise]


def _kept_reasons(arm: ArmOutcome | None) -> str:
    reasons = Counter(kept["reason"] for report in (arm.reports if arm else []) for kept in report.get("kept", []))
    return ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "-"


def _folded(arm: ArmOutcome | None) -> str:
    return str(sum(len(report.get("folded", [])) for report in arm.reports)) if arm and arm.ok else "-"


def summary(out: Path, archs: Sequence[str], dtype: str = "float32") -> str:
    """The markdown summary of every architecture of `archs` run under `out` in `dtype`."""
    rows, not_started = [], []
    for arch in archs:
        if not (Path(out) / arch / results.RESULT_FILES[0]).exists():
            continue  # not run, or running: its arms are not all there
        reference = _arm(out, arch, dtype, REFERENCE_ARM)
        if reference is None:
            continue
        if not reference.ok:
            not_started.append(f"{arch} ({reference.error.splitlines()[0][:140] if reference.error else 'no error text'})")
            continue
        arms = {name: _arm(out, arch, dtype, name) for name in PASS_ARMS}
        by_arm = {name: arm for name, arm in {REFERENCE_ARM: reference, **arms}.items() if arm is not None}
        ours = arms["cleanpass"]
        again = _arm(out, arch, dtype, REFERENCE_ARM, rep=1)
        if again is not None and not repetitions_agree([reference, again]):
            equal = "not judged: two no-pass engines differ"
        else:
            equal = f"{_equal(arms['vllm_pass'], by_arm)} / {_equal(ours, by_arm)}"
        rows.append((arch, dtype, clones_cell(reference).split(" -> ")[0], _after(arms["vllm_pass"]),
                     _after(ours), _folded(ours), equal, _kept_reasons(ours)))
    text = render(HEADER, rows)
    if not_started:
        text += (f"\n\nDid not start without a clone pass ({len(not_started)}): " + "; ".join(not_started) + ".")
    return text
