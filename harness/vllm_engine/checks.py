"""The engine check's verdicts per arm, from the outcomes of one (model, dtype); pure logic.

Per issue: the cleanpass arms' tokens and log-probs are bit-identical to the no-clone-pass arm's;
in fp32 their tokens equal eager's; they leave no more clones than vLLM's pass; cleanpass really
sat in the clone slot (its report is in the log, one line per piece); the spawned arm's pieces
were compiled in the engine core, not in the process that called `vllm.LLM`. vLLM's own pass is
checked against the same promises, but as the reference: its failures are findings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.vllm_engine.arms import ARMS, REFERENCE_ARM
from harness.vllm_engine.outcome import ArmOutcome, same_logprobs, same_tokens

#: what each compiled arm must find in the clone slot of every piece
SLOT_CLASS = {"empty": "_EmptySlot", "vllm": "UnsafeCloneEliminationPass", "cleanpass": "VllmClonePass"}


@dataclass
class Verdict:
    """An arm's comparisons and the reasons it failed (empty: it passed)."""

    tokens_vs_reference: bool | None = None
    logprobs_vs_reference: bool | None = None
    tokens_vs_eager: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def bitwise(self) -> bool | None:
        if self.tokens_vs_reference is None or self.logprobs_vs_reference is None:
            return None
        return self.tokens_vs_reference and self.logprobs_vs_reference


def judge(arm: ArmOutcome, by_arm: dict[str, ArmOutcome]) -> Verdict:
    """The verdict of `arm` given every arm of its (model, dtype), keyed by arm label."""
    verdict = Verdict()
    if not arm.ok:
        verdict.problems.append(arm.error or "the arm failed")
        return verdict
    spec = ARMS[arm.arm]
    reference, eager = by_arm.get(REFERENCE_ARM), by_arm.get("eager")
    if reference is not None:
        verdict.tokens_vs_reference = same_tokens(arm, reference)
        verdict.logprobs_vs_reference = same_logprobs(arm, reference)
    if eager is not None:
        verdict.tokens_vs_eager = same_tokens(arm, eager)
    if spec.eager:
        if arm.dtype == "float32" and verdict.tokens_vs_reference is False:
            verdict.problems.append("fp32 eager tokens differ from the compiled no-pass arm's")
        return verdict
    wanted = SLOT_CLASS[spec.slot]
    if not arm.pieces:
        verdict.problems.append("no compiled piece was counted (the test bed did not run in the compiling process)")
    elif any(slot != wanted for slot in arm.slots):
        verdict.problems.append(f"clone slot held {sorted(set(arm.slots))}, expected {wanted}")
    if arm.arm == REFERENCE_ARM:
        return verdict
    if reference is None or not reference.ok:
        verdict.problems.append(f"nothing to compare with: {REFERENCE_ARM} did not run")
    elif not verdict.bitwise:
        verdict.problems.append(f"tokens or log-probs differ from {REFERENCE_ARM}")
    if spec.slot != "cleanpass":
        return verdict
    if arm.dtype == "float32" and verdict.tokens_vs_eager is False:
        verdict.problems.append("fp32 tokens differ from eager")
    vllm = by_arm.get("vllm_pass")
    if vllm is not None and vllm.ok and None not in (vllm.clones_final, arm.clones_final) \
            and arm.clones_final > vllm.clones_final:
        verdict.problems.append(f"left {arm.clones_final} clones, vLLM's pass {vllm.clones_final}")
    if len(arm.report_lines) < len(arm.pieces):
        verdict.problems.append(f"cleanpass's report is in the log for {len(arm.report_lines)} of "
                                f"{len(arm.pieces)} compiled pieces")
    if spec.spawned and not arm.compiled_elsewhere:
        verdict.problems.append("the pieces were not compiled in a spawned engine core")
    return verdict
