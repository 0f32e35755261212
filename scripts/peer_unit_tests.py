"""vLLM's own unit tests for its clone elimination, run against the real pass and our policies.

The tests come from vLLM's source distribution (unpacked by `peer_env.sh`, never committed);
`peer_shim.py` swaps our policies in at run time. Prints one row per test and the pass counts.
Usage: python scripts/peer_unit_tests.py [VLLM_SOURCE_DIR]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = "tests/compile/passes/ir/test_clone_cleanup.py"
POLICIES = ("real", "vllm", "sound")


def run(policy: str, source_dir: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        results = os.path.join(tmp, "outcomes.json")
        env = dict(os.environ, CLEANPASS_PEER_POLICY=policy, CLEANPASS_PEER_RESULTS=results,
                   VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR",
                   PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "peer_shim", "-p", "no:cacheprovider",
                        "--import-mode=importlib", "-c", os.devnull, "--rootdir", source_dir,
                        "-W", "ignore::DeprecationWarning", os.path.join(source_dir, TESTS)],
                       cwd=source_dir, env=env, stdout=subprocess.DEVNULL, check=False)
        if not os.path.exists(results):
            raise SystemExit(f"pytest produced no results for policy {policy!r}")
        with open(results) as handle:
            return json.load(handle)["outcomes"]


def main() -> int:
    source_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".venv-peer", "vllm-src"))
    outcomes = {policy: run(policy, source_dir) for policy in POLICIES}
    tests = list(outcomes["real"])
    width = max(len(t) for t in tests)
    print(f"vLLM's unit tests ({TESTS}) with each pass in place of UnsafeCloneEliminationPass")
    print(f"{'test':<{width}}  " + "  ".join(f"{p:>6}" for p in POLICIES))
    for test in tests:
        print(f"{test:<{width}}  " + "  ".join(f"{outcomes[p].get(test, 'absent'):>6}" for p in POLICIES))
    ok = True
    for policy in POLICIES:
        passed = sum(v == "passed" for v in outcomes[policy].values())
        print(f"{policy}: {passed} of {len(tests)} passed")
        ok = ok and passed == len(tests) and len(outcomes[policy]) == len(tests)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
