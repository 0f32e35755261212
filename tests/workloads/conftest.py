"""Shared fixtures for the workloads tests.

Triton kernels on CPU run only with TRITON_INTERPRET=1 set before triton is imported; other
packages' tests share this pytest process, so the interpreter tests run in a subprocess
(``run_interpreted``) instead of flipping the variable here.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import workloads  # noqa: F401  (registers the IR ops)
from workloads import catalog, selfcheck

REPO = Path(__file__).resolve().parents[2]

def _run_interpreted(module: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m module args`` with TRITON_INTERPRET=1, from the repo root."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def run_interpreted() -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m module args`` under the Triton interpreter (see module docstring)."""
    return _run_interpreted


@pytest.fixture(scope="session")
def compiled_run() -> Callable[[str, str], selfcheck.Run]:
    """(workload, variant) -> Run on the first "test" shape, compiled once per session."""
    cache: dict[tuple[str, str], selfcheck.Run] = {}

    def get(name: str, variant: str) -> selfcheck.Run:
        if (name, variant) not in cache:
            wl = catalog.get(name)
            if wl.unavailable():
                pytest.skip(wl.unavailable())
            cache[name, variant] = selfcheck.compile_run(wl, wl.shapes("test")[0], variant)
        return cache[name, variant]

    return get

