"""The engine check end to end: every (model, dtype), every arm a fresh engine, arms alternating
over repetitions; rows into a run directory (`harness.store.results.write_run`), the table and
the arms' files beside them under `engine/`.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from harness.run import env as envmod
from harness.store import results
from harness.vllm_engine import arms as armmod
from harness.vllm_engine import launch, rows as rowmod, table
from harness.vllm_engine.models import MODELS, looks_like_architecture
from harness.vllm_engine.outcome import ArmOutcome

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16")
#: files the check adds to the run directory
ENGINE_DIR = "engine"
TABLE_FILE = "table.md"
REPORT_LOG = "cleanpass-report.log"
#: the arm with the engine core in its own process; one run of it shows the plugin working there
SPAWNED = "cleanpass_spawned"

Progress = Callable[[str], None]


@dataclass
class CheckResult:
    run_dir: Path
    frame: pd.DataFrame
    groups: list[list[list[ArmOutcome]]]  # per (model, dtype): per arm, its repetitions
    table: str
    seconds: float


def arm_order(arms: Sequence[str], rep: int) -> list[str]:
    """Arms rotated by one per repetition, so no arm always runs first (timings alternate)."""
    k = rep % len(arms) if arms else 0
    return list(arms[k:]) + list(arms[:k])


def run_check(models: Sequence[str], dtypes: Sequence[str], arms: Sequence[str], reps: int = 1,
              out: str | Path | None = None, results_root: str | Path = "results/local",
              python: str | None = None, progress: Progress | None = None,
              spawned_everywhere: bool = False, reference: str | None = None) -> CheckResult:
    """Run the check and write its run directory (skipped rows where vLLM is missing).

    The spawned arm runs on the first (model, dtype) only, unless `spawned_everywhere`. With
    `reference` (an arm), a (model, dtype) whose reference arm fails first is not run further:
    its other arms become failed rows naming that failure (they would have nothing to compare with);
    and where another arm's output differs from the reference's, the reference runs once more, so
    an engine that is not reproducible without any pass fails its reference row instead of
    blaming the pass.
    """
    unknown = [a for a in arms if a not in armmod.ARMS] + [m for m in models if m not in MODELS and not looks_like_architecture(m)]
    if unknown or reps < 1 or not arms:
        raise ValueError(f"unknown arms or models {unknown}, or reps {reps} < 1")
    t0 = time.perf_counter()
    say = progress or (lambda line: None)
    interpreter, reason = launch.vllm_python(python)
    commit, _ = envmod.git_commit()
    run_dir = results.claim_out_dir(out) if out else results.new_run_dir(results_root, commit)
    env = envmod.collect_env("cpu", rowmod.SUITE, None)
    env["vllm"] = launch.vllm_version(interpreter) if interpreter else None
    env["engine_python"] = interpreter
    env["pipeline"] = rowmod.PIPELINE
    env["variants"] = [info.to_json() for info in rowmod.declarations(arms)]
    groups: list[list[list[ArmOutcome]]] = []
    all_rows, samples = [], []
    if interpreter is None:
        all_rows = rowmod.skipped_rows(models, dtypes, arms, reason, env["device_name"])
    else:
        models_root = Path(tempfile.mkdtemp(prefix="cleanpass-tiny-models-"))
        try:
            for model in models:
                for dtype in dtypes:
                    here = [a for a in arms if a != SPAWNED or spawned_everywhere or not groups]
                    reps_by_arm = _run_group(interpreter, model, dtype, here, reps, run_dir, models_root, say,
                                             reference)
                    groups.append([reps_by_arm[a] for a in here])
        finally:
            shutil.rmtree(models_root, ignore_errors=True)
        for group in groups:
            by_arm = {reps_[0].arm: reps_[0] for reps_ in group}
            for reps_ in group:
                row = rowmod.arm_row(reps_, by_arm, env["device_name"])
                all_rows.append(row)
                samples += rowmod.samples(reps_, row)
    text = table.markdown(groups) if groups else f"(no engine ran: {reason})"
    engine = run_dir / ENGINE_DIR
    engine.mkdir(exist_ok=True)
    (engine / TABLE_FILE).write_text(text + "\n")
    lines = [f"{o.model} {o.dtype} {o.arm}: {line}" for g in groups for reps_ in g for o in reps_[:1]
             for line in o.report_lines]
    (engine / REPORT_LOG).write_text("\n".join(lines) + ("\n" if lines else ""))
    frame = results.stamp_run_id(results.rows_to_frame(all_rows, None), run_dir.name)
    env["seconds"] = round(time.perf_counter() - t0, 1)
    results.write_run(run_dir, frame, results.samples_frame(samples), env)
    return CheckResult(run_dir, frame, groups, text, time.perf_counter() - t0)


def _run_group(python: str, model: str, dtype: str, arms: Sequence[str], reps: int, run_dir: Path,
               models_root: Path, say: Progress, reference: str | None = None) -> dict[str, list[ArmOutcome]]:
    done: dict[str, list[ArmOutcome]] = {a: [] for a in arms}
    for rep in range(reps):
        for arm in arm_order(arms, rep):
            first = done.get(reference or "", [])[:1]
            if first and not first[0].ok:
                why = f"not run: the {reference} arm failed first ({first[0].error[:300]})"
                done[arm].append(ArmOutcome(model, dtype, arm, ok=False, error=why))
                say(f"{model} {dtype} {arm} rep {rep}: {why[:200]}")
                continue
            work = run_dir / ENGINE_DIR / f"{model}-{dtype}" / f"{arm}-{rep}"
            t = time.perf_counter()
            outcome = launch.run_arm(python, model, dtype, armmod.ARMS[arm], work, models_root)
            done[arm].append(outcome)
            state = "ok" if outcome.ok else f"FAILED: {outcome.error[:200]}"
            say(f"{model} {dtype} {arm} rep {rep}: {state} ({time.perf_counter() - t:.0f} s)")
    if reference in done and reps == 1 and _differs_from(done, reference):
        work = run_dir / ENGINE_DIR / f"{model}-{dtype}" / f"{reference}-1"
        again = launch.run_arm(python, model, dtype, armmod.ARMS[reference], work, models_root)
        done[reference].append(again)
        same = again.ok and (again.tokens, again.logprobs) == (done[reference][0].tokens, done[reference][0].logprobs)
        say(f"{model} {dtype} {reference} rep 1 (an arm differed): {'reproduced' if same else 'NOT reproducible'}")
    return done


def _differs_from(done: dict[str, list[ArmOutcome]], reference: str) -> bool:
    """Whether an arm that ran generated other tokens or log-probs than the reference arm."""
    base = done[reference][0]
    return base.ok and any(reps[0].ok and (reps[0].tokens, reps[0].logprobs) != (base.tokens, base.logprobs)
                           for arm, reps in done.items() if arm != reference and reps)
