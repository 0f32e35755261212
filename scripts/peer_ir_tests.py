"""vLLM's own tests of its IR pipeline, on CPU, with vLLM's pass and with cleanpass in the slot.

The three files of vLLM 0.33.0's `tests/compile/passes/ir/` (functionalization, lowering, clone
elimination), unpacked from its source distribution by `peer_env.sh` (never committed), run
under `peer_shim.py` in each arm, one pytest process per arm, side by side:
- `real`: vLLM's `UnsafeCloneEliminationPass`, as shipped;
- `cleanpass`: our plugin registered (`cleanpass.vllm_plugin.register()`), `VllmClonePass` in
  the slot and under the name the tests import;
- `cleanpass_nofold`: the same with folding off (`CLEANPASS_VLLM_FOLD=0`), on the tests that
  count clones after lowering: where cleanpass differs from vLLM's expected counts, this arm
  shows that folding alone makes the difference.
Each outcome is compared with `peer_expected.json` (`peer_expect.py`); exits 1 on any mismatch.
Usage: python scripts/peer_ir_tests.py [--source DIR] [--jobs N] [--results DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import peer_expect  # noqa: E402  (a sibling script, not a package)

TEST_DIR = "tests/compile/passes/ir"
FILES = ("test_clone_cleanup.py", "test_inplace_functionalization.py", "test_lowering.py")


@dataclass(frozen=True)
class Arm:
    policy: str
    files: tuple[str, ...] = FILES
    env: dict[str, str] = field(default_factory=dict)


ARMS = {
    "real": Arm("real"),
    "cleanpass": Arm("cleanpass"),
    "cleanpass_nofold": Arm("cleanpass", ("test_inplace_functionalization.py",),
                            {"CLEANPASS_VLLM_FOLD": "0"}),
}


def _command(arm: Arm, source_dir: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "peer_shim", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest",
            "--import-mode=importlib", "-c", os.devnull, "--rootdir", source_dir,
            "-W", "ignore::DeprecationWarning", "-W", "ignore::UserWarning"] + \
        [os.path.join(source_dir, TEST_DIR, name) for name in arm.files]


def _environment(arm: Arm, results: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CLEANPASS_VLLM")}  # the arm alone decides the slot
    env.update(arm.env, CLEANPASS_PEER_POLICY=arm.policy, CLEANPASS_PEER_RESULTS=results,
               VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR",
               PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    return env


def run_arms(names: list[str], source_dir: str, results_dir: str,
             jobs: int) -> dict[str, peer_expect.Observed]:
    """Run each arm's pytest (at most `jobs` at once); their outcomes by arm."""
    pending = list(names)
    running: dict[str, tuple[subprocess.Popen, str]] = {}
    observed: dict[str, peer_expect.Observed] = {}
    while pending or running:
        while pending and len(running) < max(1, jobs):
            name = pending.pop(0)
            results = os.path.join(results_dir, f"{name}.json")
            log = open(os.path.join(results_dir, f"{name}.log"), "w")
            process = subprocess.Popen(_command(ARMS[name], source_dir), cwd=source_dir,
                                       env=_environment(ARMS[name], results), stdout=log,
                                       stderr=subprocess.STDOUT)
            log.close()
            running[name] = (process, results)
        for name, (process, results) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            if not os.path.exists(results):
                tail = open(os.path.join(results_dir, f"{name}.log")).read()[-3000:]
                raise SystemExit(f"arm {name}: pytest wrote no results (rc {process.returncode})"
                                 f"\n{tail}")
            with open(results) as handle:
                observed[name] = peer_expect.Observed.from_results(json.load(handle))
        time.sleep(0.2)
    return {name: observed[name] for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=os.path.join(ROOT, ".venv-peer", "vllm-src"),
                        help="vLLM's unpacked source distribution (peer_env.sh makes it)")
    parser.add_argument("--jobs", type=int, default=2, help="arms run at once")
    parser.add_argument("--results", help="keep each arm's results and pytest log here")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args(argv)
    source_dir = os.path.abspath(args.source)
    if not os.path.isdir(os.path.join(source_dir, TEST_DIR)):
        raise SystemExit(f"{source_dir} has no {TEST_DIR}: run scripts/peer_env.sh first")
    expected = peer_expect.load()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        results_dir = args.results or scratch
        os.makedirs(results_dir, exist_ok=True)
        observed = run_arms(args.arms, source_dir, results_dir, args.jobs)
    seconds = time.monotonic() - start
    print(f"vLLM's IR-pipeline tests ({TEST_DIR}) on CPU, one column per pass in the clone slot")
    print("\n".join(peer_expect.table(expected, observed)))
    mismatches = peer_expect.compare(expected, observed)
    for line in mismatches:
        print(f"MISMATCH {line}")
    counts = {arm: sum(v == "passed" for v in seen.outcomes.values())
              for arm, seen in observed.items()}
    print(f"passed: {counts}; {len(mismatches)} mismatches with {peer_expect.EXPECTED_FILE.name}; "
          f"{seconds:.0f} s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
