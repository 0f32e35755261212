"""The expected outcome of each of vLLM's IR-pipeline tests in each arm, and the comparison.

`peer_expected.json` lists, per test, the outcome in every arm that runs it ("passed",
"failed", "skipped"), and for a failure the text its message must contain. Any test whose arms
disagree, or that does not pass in some arm, carries the reason in the file: where cleanpass
must differ from what vLLM's test asserts, and why a test cannot run on CPU. No vLLM import
here: `tests/scripts/test_peer_expect.py` checks this logic on synthetic outcomes anywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

OUTCOMES = ("passed", "failed", "skipped")
EXPECTED_FILE = Path(__file__).with_name("peer_expected.json")


@dataclass(frozen=True)
class Observed:
    """What one arm's pytest run reported (the shim's results file)."""

    outcomes: dict[str, str]
    messages: dict[str, str]
    lifted_skips: tuple[str, ...]
    slot: dict[str, str]

    @classmethod
    def from_results(cls, data: Mapping[str, Any]) -> "Observed":
        return cls(dict(data["outcomes"]), dict(data.get("messages", {})),
                   tuple(data.get("lifted_skips", ())), dict(data.get("slot", {})))


def load(path: Path = EXPECTED_FILE) -> dict[str, Any]:
    """The expectations file, refused when `problems()` finds any."""
    expected = json.loads(Path(path).read_text())
    found = problems(expected)
    if found:
        raise ValueError(f"{path}: " + "; ".join(found))
    return expected


def problems(expected: Mapping[str, Any]) -> list[str]:
    """Why the expectations are not a usable list: a test without an arm, an unknown outcome,
    a difference or a non-pass without its reason, a failure without its message."""
    found = []
    arms = expected.get("arms", {})
    if not arms:
        found.append("no arms")
    tests = expected.get("tests", {})
    if not tests:
        found.append("no tests")
    for test, entry in tests.items():
        listed = [arm for arm in arms if arm in entry]
        if not listed:
            found.append(f"{test}: no arm")
        for key in entry:
            if key not in arms and key not in ("reason", "message"):
                found.append(f"{test}: unknown key {key!r}")
        outcomes = {entry[arm] for arm in listed}
        if not outcomes <= set(OUTCOMES):
            found.append(f"{test}: outcome not one of {OUTCOMES}: {sorted(outcomes)}")
        if outcomes != {"passed"} and not entry.get("reason", "").strip():
            found.append(f"{test}: {dict((a, entry[a]) for a in listed)} needs a reason")
        if "failed" in outcomes and not entry.get("message", "").strip():
            found.append(f"{test}: an expected failure needs the text of its message")
    for arm, spec in arms.items():
        if not spec.get("slot"):
            found.append(f"arm {arm}: no slot class")
    return found


def compare(expected: Mapping[str, Any], observed: Mapping[str, Observed]) -> list[str]:
    """Every way the observed runs differ from the expectations (empty: they match)."""
    found = []
    tests = expected["tests"]
    for arm, seen in observed.items():
        spec = expected["arms"].get(arm)
        if spec is None:
            found.append(f"arm {arm}: not in the expectations")
            continue
        for slot_at, name in seen.slot.items():
            if name != spec["slot"]:
                found.append(f"arm {arm}: the slot ({slot_at}) held {name}, not {spec['slot']}")
        if not seen.slot:
            found.append(f"arm {arm}: the run did not say which class held the slot")
        lifted = sorted(seen.lifted_skips)
        if lifted != sorted(expected.get("lifted_skips", [])):
            found.append(f"arm {arm}: skips lifted {lifted}, expected "
                         f"{sorted(expected.get('lifted_skips', []))}")
        wanted = {test: entry[arm] for test, entry in tests.items() if arm in entry}
        for test, outcome in wanted.items():
            got = seen.outcomes.get(test)
            if got is None:
                found.append(f"{arm}: {test}: did not run (expected {outcome})")
            elif got != outcome:
                detail = f" ({seen.messages[test]})" if test in seen.messages else ""
                found.append(f"{arm}: {test}: {got}, expected {outcome}{detail}")
            elif got == "failed" and tests[test]["message"] not in seen.messages.get(test, ""):
                found.append(f"{arm}: {test}: failed with {seen.messages.get(test)!r}, expected a "
                             f"message containing {tests[test]['message']!r}")
        for test in seen.outcomes.keys() - wanted.keys():
            found.append(f"{arm}: {test}: {seen.outcomes[test]}, but not listed for this arm")
    return found


def table(expected: Mapping[str, Any], observed: Mapping[str, Observed]) -> list[str]:
    """One row per test: its outcome in each arm, and the listed reason where there is one."""
    arms = list(observed)
    tests = list(dict.fromkeys([t for seen in observed.values() for t in seen.outcomes]
                               + list(expected["tests"])))
    width = max(len(t) for t in tests)
    rows = [f"{'test':<{width}}  " + "  ".join(f"{arm:>16}" for arm in arms)]
    for test in tests:
        cells = "  ".join(f"{observed[arm].outcomes.get(test, '-'):>16}" for arm in arms)
        reason = expected["tests"].get(test, {}).get("reason", "")
        rows.append(f"{test:<{width}}  {cells}" + (f"  | {reason}" if reason else ""))
    return rows
