"""The pass's soundness properties on fresh random programs, as many as asked (`make fuzz`).

CI runs the same properties on a fixed 500 programs (derandomised, so a red CI reproduces);
this runs new ones every time, for breadth: a nightly job, or a developer after touching
`cleanpass/`. Each mode is a property test's own body (tests/cleanpass), run through the
differential checker:

- fake: random programs with static shapes (sound vs the reference policy, completeness);
- real: the same generator's programs traced on real tensors too: decided clone by clone as
  traced on fake tensors, and the completeness figures of the real traces;
- oblivious: symbolic sizes that may be 0 or 1, checked at other sizes, no guard added;
- strided: clones of strided and offset views of a fused projection (seeds from --seed).

Exit 1 on the first miscompile (or crash), with the program hypothesis shrank it to, or the
seed. `--policy vllm` fuzzes the reference policy instead: it fails, which shows the fuzzer
finds the holes a pass has.

Usage: python scripts/fuzz_pass.py [--programs N] [--modes fake,real,oblivious,strided] [--seed S]
                                   [--policy sound|vllm]
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import sys
import time
from typing import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

import cleanpass  # noqa: E402
from tests.cleanpass import test_property as prop  # noqa: E402
from tests.cleanpass import test_strided_property as strided_prop  # noqa: E402
from tests.cleanpass.helpers import run_pass  # noqa: E402
from tests.cleanpass.random_programs import programs  # noqa: E402

MODES = ("fake", "real", "oblivious", "strided")


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=False, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


@contextlib.contextmanager
def policy_under_test(policy: str) -> Iterator[None]:
    """Make `policy` the one the property bodies run (they call the pass with its default)."""
    original = cleanpass.eliminate_clones
    cleanpass.eliminate_clones = functools.partial(original, policy=policy)  # an explicit policy wins
    try:
        yield
    finally:
        cleanpass.eliminate_clones = original


def fuzz_fake(n: int, start: int, policy: str) -> str:
    body = prop.test_sound_policy_survives_the_differential_checker.hypothesis.inner_test
    seed(start)(_settings(n)(given(programs())(body)))()
    s = prop.REFERENCE_STATS
    return (f"fake: {s['graphs']} programs, {s['clones']} clones: removed {s['removed_sound']} and "
            f"folded {s['folded_sound']}, 0 miscompiles; vllm wrong on {s['wrong']}, asserted on "
            f"{s['asserted']}; {prop.completeness(s)}")


def fuzz_real(n: int, start: int, policy: str) -> str:
    body = prop.test_real_and_fake_traces_decide_alike.hypothesis.inner_test
    seed(start)(_settings(n)(given(programs())(body)))()
    s = prop.REAL_STATS
    return (f"real: {s['graphs']} programs traced on real and on fake tensors, decided alike, "
            f"{s['clones']} clones: removed {s['removed_sound']} and folded {s['folded_sound']}, "
            f"0 miscompiles; vllm wrong on {s['wrong']}, asserted on {s['asserted']}; {prop.completeness(s)}")


def fuzz_oblivious(n: int, start: int, policy: str) -> str:
    body = prop.test_sound_policy_survives_symbolic_shapes.hypothesis.inner_test
    seed(start)(_settings(n)(given(program=programs(max_instructions=8))(
        lambda program: body("oblivious", program))))()
    return (f"oblivious: {n} programs (sizes that may be 0 or 1), {prop.OTHER_SIZES_RUN['oblivious']} "
            f"runs at other sizes, 0 guards added, 0 miscompiles")


def fuzz_strided(n: int, start: int, policy: str) -> str:
    x, w = torch.randn(strided_prop.ROWS, 16), torch.randn(16, strided_prop.COLS)
    removed = kept = 0
    for s in range(start, start + n):
        out = run_pass(strided_prop._program(s), x, w, trials=1, policy=policy)
        if not out.check.ok:
            raise AssertionError(f"strided program seed {s}: {out.check.problems}")
        removed += len(out.report.removed)
        kept += len(out.report.kept)
    return f"strided: {n} programs (seeds {start}..{start + n - 1}), {removed} clones removed, {kept} kept, 0 miscompiles"


FUZZERS = {"fake": fuzz_fake, "real": fuzz_real, "oblivious": fuzz_oblivious, "strided": fuzz_strided}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=2000, help="programs per mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run (default: a fresh one)")
    parser.add_argument("--policy", default="sound", choices=("sound", "vllm"), help="the policy under test")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; use {', '.join(MODES)}")
    start = args.seed if args.seed is not None else random.randrange(1_000_000, 2_000_000_000)
    print(f"fuzz_pass: policy {args.policy}, seed {start}, torch {torch.__version__}", flush=True)
    for mode in modes:
        t0 = time.perf_counter()
        try:
            with policy_under_test(args.policy):
                line = FUZZERS[mode](args.programs, start, args.policy)
        except Exception as failure:  # noqa: BLE001 - a wrong result or a crash: both fail the run
            print(f"fuzz_pass: {mode}: FAILED (rerun: --seed {start} --modes {mode} --policy {args.policy}):\n"
                  f"{type(failure).__name__}: {failure}", file=sys.stderr)
            return 1
        print(f"{line} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
