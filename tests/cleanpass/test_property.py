"""Property: on any random program, the sound policy passes the differential checker.

Also counts how often the "vllm" reference policy gets the same graphs wrong (a wrong output,
a changed input, new aliasing, or its assertion); the count is printed in pytest's summary.
"""
from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings

import cleanpass
from cleanpass import verify

from .helpers import OTHER_SIZES, count_clones, size_semantics, trace
from .random_programs import programs

REFERENCE_STATS = {"graphs": 0, "wrong": 0, "asserted": 0, "clones": 0,
                   "removed_sound": 0, "removed_vllm": 0, "folded_sound": 0, "vllm_right": 0,
                   "vllm_right_removed_more": 0}
EXAMPLES = 500
#: per tracing mode, how many (program, other size) runs the symbolic property made
OTHER_SIZES_RUN = {"symbolic": 0, "oblivious": 0}
COMMON = dict(deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])


def _traced(program, mode="fake"):
    inputs = program.inputs()
    try:
        program(*[t.clone() for t in inputs])  # programs torch itself refuses are not graphs
        gm = trace(program, *inputs, mode=mode)
    except RuntimeError:
        assume(False)
    return gm


def _reference_outcome(gm, donated, removed_by_sound: int) -> str:
    after = copy.deepcopy(gm)
    try:
        report = cleanpass.eliminate_clones(after, donated=donated, policy="vllm")
    except AssertionError:
        return "asserted"
    REFERENCE_STATS["removed_vllm"] += len(report.removed)
    if not verify.check(gm, after, donated=donated, trials=2).ok:
        return "wrong"
    REFERENCE_STATS["vllm_right"] += 1
    if len(report.removed) > removed_by_sound:  # completeness: where vllm was right, did it win?
        REFERENCE_STATS["vllm_right_removed_more"] += 1
    return "ok"


@settings(max_examples=EXAMPLES, **COMMON)
@given(programs())
def test_sound_policy_survives_the_differential_checker(program):
    gm = _traced(program)
    after = copy.deepcopy(gm)
    report = cleanpass.eliminate_clones(after, donated=program.donated)
    result = verify.check(gm, after, donated=program.donated, trials=2)
    assert result.ok, (result.problems, program, report)
    assert count_clones(after) == report.clones_after
    again = cleanpass.eliminate_clones(after, donated=program.donated)
    assert again.removed == [] and again.folded == [], "a second run must remove and fold nothing"

    REFERENCE_STATS["graphs"] += 1
    REFERENCE_STATS["clones"] += report.clones_before
    REFERENCE_STATS["removed_sound"] += len(report.removed)
    REFERENCE_STATS["folded_sound"] += len(report.folded)
    outcome = _reference_outcome(gm, program.donated, len(report.removed))
    if outcome != "ok":
        REFERENCE_STATS[outcome] += 1


@pytest.mark.parametrize("mode", ["symbolic", "oblivious"])
@settings(max_examples=40, **COMMON)
@given(program=programs(max_instructions=8))
def test_sound_policy_survives_symbolic_shapes(mode, program):
    """Sizes as symbols (oblivious: that may be 0 or 1): still correct, and never specialised."""
    gm = _traced(program, mode=mode)
    after = copy.deepcopy(gm)
    with size_semantics(mode):
        report = cleanpass.eliminate_clones(after, donated=program.donated)
    result = verify.check(gm, after, donated=program.donated, trials=1, other_sizes=OTHER_SIZES)
    assert result.ok, (result.problems, program)
    assert report.guards_added == (), (report.guards_added, program)
    OTHER_SIZES_RUN[mode] += len(result.sizes_checked)


def test_symbolic_programs_ran_at_other_sizes_too():
    """Guard: the symbolic properties above checked more than the trace-time sizes (under
    "oblivious" a size of 1 is allowed; under "symbolic" Dynamo's ranges start at 2)."""
    for mode in ("symbolic", "oblivious"):
        if not OTHER_SIZES_RUN[mode]:
            test_sound_policy_survives_symbolic_shapes(mode)
    assert min(OTHER_SIZES_RUN.values()) > 20, OTHER_SIZES_RUN


def test_the_generator_exercises_the_pass():
    """Guard: the property above means little unless the graphs have clones to remove."""
    if REFERENCE_STATS["graphs"] < 100:
        test_sound_policy_survives_the_differential_checker()
    assert REFERENCE_STATS["graphs"] >= 100
    assert REFERENCE_STATS["removed_sound"] >= REFERENCE_STATS["clones"] // 5
    assert REFERENCE_STATS["wrong"] + REFERENCE_STATS["asserted"] > 0
    assert REFERENCE_STATS["folded_sound"] > 0
    # as complete as the reference where the reference is right, on >= 99% of those graphs (the
    # printed figure). The rest: the reference wins only because what reads the old value is a
    # custom kernel whose result nobody uses, which the sound policy never assumes is unobserved.
    assert REFERENCE_STATS["vllm_right_removed_more"] * 100 <= REFERENCE_STATS["vllm_right"]
