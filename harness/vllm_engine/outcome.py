"""What one arm produced, read back from its work directory, and how arms compare; pure logic.

An arm's work directory holds `out.json` (the child's result), `counts/` (the test bed's clone
counts, one JSON per compiled piece), `reports/` (cleanpass's own per-graph JSON, when cleanpass
was in the slot) and `log` (the arm's stdout and stderr, including the spawned engine core's).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the prefix of cleanpass's per-graph log line (cleanpass.vllm_plugin.report_line)
REPORT_LINE = "cleanpass: graph "


@dataclass(frozen=True)
class Piece:
    """Clone counts of one compiled piece: after lowering, after the clone slot, at the end."""

    lowered: int
    after_slot: int
    final: int


@dataclass
class ArmOutcome:
    """One arm of one (model, dtype): the engine's output, timings and clone counts."""

    model: str
    dtype: str
    arm: str
    ok: bool
    error: str = ""
    start_s: float = math.nan
    generate_s: float = math.nan
    tokens: list[list[int]] = field(default_factory=list)
    logprobs: list[list[float]] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    report_lines: list[str] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)  # what sat in the clone slot, per piece
    pids: list[int] = field(default_factory=list)   # processes that compiled pieces
    runner_pid: int | None = None                    # the process that called vllm.LLM

    @property
    def generated(self) -> int:
        return sum(len(t) for t in self.tokens)

    @property
    def tokens_per_s(self) -> float:
        return self.generated / self.generate_s if self.generate_s and self.generate_s > 0 else math.nan

    @property
    def clones_lowered(self) -> int | None:
        return sum(p.lowered for p in self.pieces) if self.pieces else None

    @property
    def clones_final(self) -> int | None:
        return sum(p.final for p in self.pieces) if self.pieces else None

    @property
    def compiled_elsewhere(self) -> bool:
        """Whether the pieces were compiled in another process than the one that called LLM
        (the spawned engine core)."""
        return bool(self.pids) and self.runner_pid is not None and self.runner_pid not in self.pids


def _records(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def read_arm(work: Path, model: str, dtype: str, arm: str) -> ArmOutcome:
    """The outcome of an arm from its work directory (an arm with no `out.json` failed)."""
    out_path = work / "out.json"
    log_text = (work / "log").read_text(errors="replace") if (work / "log").exists() else ""
    if not out_path.exists():
        tail = [line for line in log_text.strip().splitlines() if line.strip()][-1:] or ["no output"]
        result: dict[str, Any] = {"ok": False, "error": f"arm process left no result: {tail[0][:300]}"}
    else:
        result = json.loads(out_path.read_text())
    counts = sorted(_records(work / "counts"), key=lambda r: (r["pid"], r["n"]))
    reports = sorted(_records(work / "reports"), key=lambda r: (r["pid"], r["graph"]))
    lines = [line[line.index(REPORT_LINE):] for line in log_text.splitlines() if REPORT_LINE in line]
    return ArmOutcome(
        model=model, dtype=dtype, arm=arm, ok=bool(result.get("ok")), error=result.get("error", ""),
        start_s=result.get("start_s", math.nan), generate_s=result.get("generate_s", math.nan),
        tokens=result.get("tokens", []), logprobs=result.get("logprobs", []),
        pieces=[Piece(c["clones_lowered"], c["clones_after_slot"], c["clones_final"]) for c in counts],
        report_lines=lines, reports=reports, slots=[c["slot"] for c in counts], pids=sorted({c["pid"] for c in counts}),
        runner_pid=result.get("pid"))


def same_tokens(a: ArmOutcome, b: ArmOutcome) -> bool | None:
    """Whether two arms generated the same tokens (None: one of them has none)."""
    if not (a.ok and b.ok and a.tokens and b.tokens):
        return None
    return a.tokens == b.tokens


def same_logprobs(a: ArmOutcome, b: ArmOutcome) -> bool | None:
    """Whether two arms' chosen-token log-probs are bit-identical (None: nothing to compare)."""
    if not (a.ok and b.ok and a.logprobs and b.logprobs):
        return None
    return a.logprobs == b.logprobs


def repetitions_agree(reps: list[ArmOutcome]) -> bool:
    """Whether every repetition that ran generated the first one's tokens and log-probs."""
    first = reps[0]
    return not any(r.ok and first.ok and (r.tokens, r.logprobs) != (first.tokens, first.logprobs) for r in reps[1:])


#: the problem of an arm whose repetitions disagree (an engine not reproducible by itself)
NOT_REPRODUCIBLE = "repetitions of this arm generated different tokens or log-probs"


def max_logprob_gap(a: ArmOutcome, b: ArmOutcome) -> float:
    """The largest log-prob difference at positions where both chose the same token."""
    gaps = [abs(x - y) for ta, tb, la, lb in zip(a.tokens, b.tokens, a.logprobs, b.logprobs)
            for s, t, x, y in zip(ta, tb, la, lb) if s == t]
    return max(gaps) if gaps else math.nan


def first_divergence(a: ArmOutcome, b: ArmOutcome) -> tuple[int, int] | None:
    """(prompt, position) where the two arms' tokens first differ, or None."""
    for i, (ta, tb) in enumerate(zip(a.tokens, b.tokens)):
        for j, (s, t) in enumerate(zip(ta, tb)):
            if s != t:
                return i, j
        if len(ta) != len(tb):
            return i, min(len(ta), len(tb))
    return None
