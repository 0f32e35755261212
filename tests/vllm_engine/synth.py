"""Arm outcomes and arm work directories made by hand, for the engine check's pure logic."""
from __future__ import annotations

import json
from pathlib import Path

from harness.vllm_engine.outcome import ArmOutcome, Piece

TOKENS = [[5, 6, 7], [8, 9, 10]]
LOGPROBS = [[-1.0, -2.0, -0.5], [-0.25, -1.5, -3.0]]
SLOTS = {"no_pass": "_EmptySlot", "vllm_pass": "UnsafeCloneEliminationPass", "cleanpass": "VllmClonePass",
         "cleanpass_spawned": "VllmClonePass"}
AFTER = {"no_pass": (0, 4, 4), "vllm_pass": (0, 0, 0), "cleanpass": (0, 0, 0), "cleanpass_spawned": (0, 0, 0)}


def outcome(arm: str, dtype: str = "float32", tokens=None, logprobs=None, after=None, lines=None,
            pids=(11,), runner_pid: int = 11, ok: bool = True, error: str = "") -> ArmOutcome:
    """An arm that ran: three pieces with 0/4/4 clones after lowering."""
    pieces = [] if arm == "eager" else [Piece(lo, a, a) for lo, a in zip((0, 4, 4), after or AFTER[arm])]
    n_lines = len(pieces) if arm.startswith("cleanpass") else 0
    return ArmOutcome(model="llama", dtype=dtype, arm=arm, ok=ok, error=error, start_s=30.0, generate_s=1.5,
                      tokens=tokens if tokens is not None else [list(t) for t in TOKENS],
                      logprobs=logprobs if logprobs is not None else [list(x) for x in LOGPROBS],
                      pieces=pieces, report_lines=lines if lines is not None else
                      [f"cleanpass: graph {i} (1, 512): clones 4 -> 0" for i in range(n_lines)],
                      slots=[SLOTS.get(arm, "")] * len(pieces), pids=list(pids) if pieces else [],
                      runner_pid=runner_pid)


def group(dtype: str = "float32", **changed: ArmOutcome) -> dict[str, ArmOutcome]:
    """Every arm of one (model, dtype), all agreeing; `changed` replaces arms by label."""
    arms = {a: outcome(a, dtype) for a in ("no_pass", "vllm_pass", "cleanpass", "eager")}
    arms["cleanpass_spawned"] = outcome("cleanpass_spawned", dtype, pids=(12,), runner_pid=11)
    arms.update(changed)
    return arms


def write_work(work: Path, result: dict | None, counts: list[dict], reports: list[dict], log: str) -> Path:
    """An arm's work directory as the child and the plugins leave it."""
    (work / "counts").mkdir(parents=True)
    (work / "reports").mkdir()
    if result is not None:
        (work / "out.json").write_text(json.dumps(result))
    for c in counts:
        (work / "counts" / f"{c['pid']}-{c['n']}.json").write_text(json.dumps(c))
    for r in reports:
        (work / "reports" / f"{r['pid']}-{r['graph']}.json").write_text(json.dumps(r))
    (work / "log").write_text(log)
    return work
