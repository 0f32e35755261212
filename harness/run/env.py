"""What a run ran on: versions, device, commit; written to ``env.json`` with every run."""
from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import socket
import subprocess
from typing import Any

import torch

from harness.run import vllm_real

log = logging.getLogger(__name__)


def _cmd(args: list[str], timeout: float = 10.0) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)
        return out.stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool just leaves the field empty
        return None


def git_commit(repo: str = ".") -> tuple[str, bool | None]:
    """Short commit hash and whether tracked files differ from it (``nocommit`` outside git)."""
    commit = _cmd(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    if not commit:
        return "nocommit", None
    status = _cmd(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    return commit, (bool(status) if status is not None else None)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; explicit values are checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch.cuda.is_available() is False")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}")
    return device


def device_name(device: str) -> str:
    """GPU name, or the CPU model (runs are only compared on the same device name)."""
    if device == "cuda":
        return torch.cuda.get_device_name(torch.cuda.current_device())
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except Exception:  # noqa: BLE001
        return None


def _nvidia_smi() -> dict[str, Any]:
    """Driver and clocks from nvidia-smi, where present (fields stay None otherwise)."""
    q = "driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.limit"
    out = _cmd(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits"])
    if not out:
        return {"driver": None, "clocks": None}
    first = [x.strip() for x in out.splitlines()[0].split(",")]
    names = q.split(",")
    vals = dict(zip(names, first))
    clocks = {k: vals.get(k) for k in names[1:]}
    return {"driver": vals.get("driver_version"), "clocks": clocks}


def collect_env(device: str, suite: str, peak_gbps: float | None, repo: str = ".") -> dict[str, Any]:
    """All env.json keys (docs/results-schema.md); GPU-only fields are None on CPU."""
    commit, dirty = git_commit(repo)
    env: dict[str, Any] = {
        "device": device,
        "device_name": device_name(device),
        "peak_gbps_measured": peak_gbps,
        "torch": torch.__version__,
        "triton": _triton_version(),
        "vllm": vllm_real.version(),  # the vllm_real variant's pass (None: not installed)
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "suite": suite,
        "driver": None,
        "cuda": torch.version.cuda,
        "clocks": None,
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
    }
    if device == "cuda":
        env.update(_nvidia_smi())
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        env["l2_bytes"] = getattr(props, "L2_cache_size", None)
        env["sm_count"] = getattr(props, "multi_processor_count", None)
    return env
