"""The side-by-side table of the engine check (markdown), from the arms' outcomes; pure."""
from __future__ import annotations

import math
from typing import Sequence

from harness.vllm_engine.checks import judge
from harness.vllm_engine.outcome import NOT_REPRODUCIBLE, ArmOutcome, repetitions_agree

HEADER = ("model", "dtype", "arm", "clones per piece: lowered -> after", "tokens = no-pass",
          "log-probs = no-pass", "tokens = eager", "start s", "generate s", "tok/s", "verdict")


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def _seconds(value: float) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"


def clones_cell(arm: ArmOutcome) -> str:
    """`0/4/4 -> 0/0/0`: each compiled piece's clones after lowering and at the end."""
    if not arm.pieces:
        return "-"
    lowered = "/".join(str(p.lowered) for p in arm.pieces)
    final = "/".join(str(p.final) for p in arm.pieces)
    return f"{lowered} -> {final}"


def _median(values: list[float]) -> float:
    values = sorted(v for v in values if v == v)
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def table_rows(groups: Sequence[list[list[ArmOutcome]]]) -> list[tuple[str, ...]]:
    """One line per arm: `groups` is, per (model, dtype), each arm's repetitions."""
    lines = []
    for arms in groups:
        by_arm = {reps[0].arm: reps[0] for reps in arms}
        for reps in arms:
            first = reps[0]
            verdict = judge(first, by_arm)
            ran = [r for r in reps if r.ok]
            tok_s = _median([r.tokens_per_s for r in ran])
            lines.append((first.model, first.dtype, first.arm, clones_cell(first),
                          _yes(verdict.tokens_vs_reference), _yes(verdict.logprobs_vs_reference),
                          _yes(verdict.tokens_vs_eager), _seconds(_median([r.start_s for r in ran])),
                          _seconds(_median([r.generate_s for r in ran])),
                          "-" if tok_s != tok_s else f"{tok_s:.0f}",
                          _verdict_cell(verdict.problems + ([] if repetitions_agree(reps) else [NOT_REPRODUCIBLE]))))
    return lines


def _verdict_cell(problems: list[str]) -> str:
    return "ok" if not problems else "FAIL: " + "; ".join(problems)[:160]


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table (a `|` inside a cell becomes `/`)."""
    lines = [tuple(header), tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in lines)


def markdown(groups: Sequence[list[list[ArmOutcome]]]) -> str:
    """The table as markdown."""
    return render(HEADER, table_rows(groups))
