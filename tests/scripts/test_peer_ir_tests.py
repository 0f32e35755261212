"""scripts/peer_ir_tests.py: vLLM's IR-pipeline tests with vLLM's pass and with cleanpass in the
slot, compared with scripts/peer_expected.json.

The list logic (scripts/peer_expect.py) and the runner's per-arm command are checked here on
synthetic outcomes, without vLLM; the last test runs the real thing where vLLM is installed
(`.venv-peer`, built by scripts/peer_env.sh) and skips elsewhere.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import peer_expect  # noqa: E402
import peer_ir_tests  # noqa: E402
import peer_shim  # noqa: E402

REAL_SLOT = "vllm.compilation.passes.ir.clone_elimination.UnsafeCloneEliminationPass"
OUR_SLOT = "cleanpass.vllm_plugin.VllmClonePass"


def _expected() -> dict:
    return {
        "arms": {"real": {"slot": REAL_SLOT}, "cleanpass": {"slot": OUR_SLOT}},
        "lifted_skips": ["f.py::t_count"],
        "tests": {
            "f.py::t_same": {"real": "passed", "cleanpass": "passed"},
            "f.py::t_count": {"real": "passed", "cleanpass": "failed",
                              "message": "Expected 3 clones, got 0", "reason": "folding"},
            "f.py::t_cuda": {"real": "skipped", "cleanpass": "skipped", "reason": "device"},
        },
    }


def _observed(**changes) -> dict[str, peer_expect.Observed]:
    runs = {
        "real": dict(outcomes={"f.py::t_same": "passed", "f.py::t_count": "passed",
                               "f.py::t_cuda": "skipped"},
                     messages={}, lifted_skips=("f.py::t_count",),
                     slot={"pass_manager": REAL_SLOT, "clone_elimination": REAL_SLOT}),
        "cleanpass": dict(outcomes={"f.py::t_same": "passed", "f.py::t_count": "failed",
                                    "f.py::t_cuda": "skipped"},
                          messages={"f.py::t_count": "AssertionError: Expected 3 clones, got 0"},
                          lifted_skips=("f.py::t_count",),
                          slot={"pass_manager": OUR_SLOT, "clone_elimination": OUR_SLOT}),
    }
    for key, value in changes.items():
        arm, field = key.split("__")
        runs[arm][field] = value
    return {arm: peer_expect.Observed(**fields) for arm, fields in runs.items()}


def test_the_committed_list_is_usable_and_gives_every_difference_its_reason():
    expected = peer_expect.load()
    assert set(expected["arms"]) == set(peer_ir_tests.ARMS)
    for test, entry in expected["tests"].items():
        arms = {arm for arm in expected["arms"] if arm in entry}
        assert {"real", "cleanpass"} <= arms, test
        if len({entry[arm] for arm in arms}) > 1:
            assert "must differ" in entry["reason"], test
    differing = [t for t, e in expected["tests"].items() if e["real"] != e["cleanpass"]]
    assert differing, "the list names the tests where cleanpass differs from vLLM's expectation"
    files = {test.split("::")[0] for test in expected["tests"]}
    assert files == set(peer_ir_tests.FILES)


def test_a_list_without_reasons_messages_or_arms_is_refused():
    assert peer_expect.problems(_expected()) == []
    bad = _expected()
    del bad["tests"]["f.py::t_count"]["reason"]
    del bad["tests"]["f.py::t_cuda"]["reason"]
    bad["tests"]["f.py::t_count"]["message"] = " "
    bad["tests"]["f.py::t_same"] = {"real": "passed", "cleanpass": "xfailed"}
    bad["tests"]["f.py::t_none"] = {"nightly": "passed"}
    found = peer_expect.problems(bad)
    assert any(p.startswith("f.py::t_count:") and "needs a reason" in p for p in found)
    assert any(p.startswith("f.py::t_cuda:") and "needs a reason" in p for p in found)
    assert any(p.startswith("f.py::t_count:") and "message" in p for p in found)
    assert any(p.startswith("f.py::t_same:") and "outcome not one of" in p for p in found)
    assert any(p == "f.py::t_none: no arm" for p in found)
    assert any("unknown key 'nightly'" in p for p in found)
    assert "no arms" in peer_expect.problems({"tests": {}}) and \
        "no tests" in peer_expect.problems({"tests": {}})


def test_outcomes_as_listed_match():
    assert peer_expect.compare(_expected(), _observed()) == []


@pytest.mark.parametrize("change, says", [
    (dict(cleanpass__outcomes={"f.py::t_same": "passed", "f.py::t_count": "passed",
                               "f.py::t_cuda": "skipped"}),
     "cleanpass: f.py::t_count: passed, expected failed"),
    (dict(real__outcomes={"f.py::t_same": "failed", "f.py::t_count": "passed",
                          "f.py::t_cuda": "skipped"}, real__messages={"f.py::t_same": "boom"}),
     "real: f.py::t_same: failed, expected passed (boom)"),
    (dict(cleanpass__messages={"f.py::t_count": "AssertionError: numerics differ"}),
     "expected a message containing 'Expected 3 clones, got 0'"),
    (dict(real__outcomes={"f.py::t_same": "passed", "f.py::t_count": "passed"}),
     "real: f.py::t_cuda: did not run (expected skipped)"),
    (dict(real__outcomes={"f.py::t_same": "passed", "f.py::t_count": "passed",
                          "f.py::t_cuda": "skipped", "f.py::t_new": "passed"}),
     "real: f.py::t_new: passed, but not listed for this arm"),
    (dict(cleanpass__slot={"pass_manager": REAL_SLOT, "clone_elimination": OUR_SLOT}),
     f"arm cleanpass: the slot (pass_manager) held {REAL_SLOT}"),
    (dict(real__slot={}), "arm real: the run did not say which class held the slot"),
    (dict(real__lifted_skips=()), "arm real: skips lifted []"),
])
def test_every_departure_from_the_list_is_a_mismatch(change, says):
    found = peer_expect.compare(_expected(), _observed(**change))
    assert any(says in line for line in found), found


def test_an_arm_missing_from_the_list_is_a_mismatch():
    observed = _observed()
    observed["nightly"] = observed["real"]
    assert peer_expect.compare(_expected(), observed) == ["arm nightly: not in the expectations"]


def test_the_table_gives_each_arm_a_column_and_the_reason_where_arms_differ():
    rows = peer_expect.table(_expected(), _observed())
    row = next(r for r in rows if r.startswith("f.py::t_count"))
    assert row.split()[1:4] == ["passed", "failed", "|"] and row.endswith("folding")
    assert "|" not in next(r for r in rows if r.startswith("f.py::t_same"))


def test_each_arm_decides_its_own_slot_whatever_the_caller_set(monkeypatch):
    monkeypatch.setenv("CLEANPASS_VLLM", "0")
    monkeypatch.setenv("CLEANPASS_VLLM_FOLD", "0")
    cleanpass = peer_ir_tests._environment(peer_ir_tests.ARMS["cleanpass"], "/tmp/r.json")
    assert "CLEANPASS_VLLM" not in cleanpass and "CLEANPASS_VLLM_FOLD" not in cleanpass
    assert cleanpass["CLEANPASS_PEER_POLICY"] == "cleanpass"
    nofold = peer_ir_tests._environment(peer_ir_tests.ARMS["cleanpass_nofold"], "/tmp/r.json")
    assert nofold["CLEANPASS_VLLM_FOLD"] == "0" and nofold["CLEANPASS_PEER_POLICY"] == "cleanpass"
    command = peer_ir_tests._command(peer_ir_tests.ARMS["cleanpass_nofold"], "/src")
    assert command[-1] == "/src/tests/compile/passes/ir/test_inplace_functionalization.py"
    assert sum(part.endswith(".py") for part in command) == 1
    assert ["-p", "peer_shim"] == command[command.index("peer_shim") - 1:command.index("peer_shim") + 1]


def test_the_shim_names_tests_by_file_and_name():
    assert peer_shim._test_id("tests/compile/passes/ir/test_lowering.py::test_x[native]") == \
        "test_lowering.py::test_x[native]"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                    reason="vLLM is not installed here (scripts/peer_env.sh builds .venv-peer)")
def test_vllms_ir_tests_run_as_listed_with_each_pass_in_the_slot(tmp_path):
    source = Path(sys.prefix) / "vllm-src"
    assert (source / peer_ir_tests.TEST_DIR).is_dir(), f"{source}: run scripts/peer_env.sh"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "peer_ir_tests.py"), "--source",
                           str(source), "--results", str(tmp_path)], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " 0 mismatches with peer_expected.json" in proc.stdout
    for arm in peer_ir_tests.ARMS:
        assert (tmp_path / f"{arm}.json").is_file()
