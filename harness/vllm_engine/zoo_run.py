"""The zoo run: the engine check (`check.run_check`) once per architecture, resumable.

Each architecture gets its own run directory `<out>/<architecture>/`; one whose run files are
there is done and skipped (one cut off before them starts over), so re-running with the same `--out` goes on where a run stopped. An
architecture whose engine does not start is a failed row with the first line of its error (the
check's own behaviour), and the run goes on. `<out>/zoo.md` gathers every done architecture's table.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from harness.store import results
from harness.vllm_engine import check, launch, zoo_table

#: no clone pass, vLLM's pass, cleanpass: each a fresh engine, one at a time
ZOO_ARMS = ("no_pass", "vllm_pass", "cleanpass")
ZOO_DTYPES = ("float32",)
DEFAULT_OUT = Path("results/local/vllm-zoo")
ZOO_TABLE = "zoo.md"
#: one line per architecture and dtype (`zoo_table.summary`)
ZOO_SUMMARY = "summary.md"

RunOne = Callable[..., object]


def arch_dir(out: Path, arch: str) -> Path:
    return Path(out) / arch


def is_done(out: Path, arch: str) -> bool:
    """Done when the check wrote its run files (written last, after every arm ran)."""
    return (arch_dir(out, arch) / results.RESULT_FILES[0]).exists()


def list_archs(python: str) -> dict[str, dict[str, str]]:
    """{"kept": {arch: config class}, "dropped": {arch: why}} from vLLM's registry, asked in the
    vLLM environment's interpreter (this one may not have vLLM)."""
    with tempfile.TemporaryDirectory(prefix="cleanpass-zoo-") as tmp:
        listing = Path(tmp) / "archs.json"
        subprocess.run([python, "-m", "harness.vllm_engine.zoo", str(listing)], capture_output=True,
                       timeout=300, check=True)
        return json.loads(listing.read_text())


def run_zoo(archs: Sequence[str], out: Path = DEFAULT_OUT, dtypes: Sequence[str] = ZOO_DTYPES,
            arms: Sequence[str] = ZOO_ARMS, python: str | None = None,
            progress: Callable[[str], None] | None = None, run_one: RunOne = check.run_check) -> str:
    """Run every architecture not yet done under `out`; write every architecture's table
    (`zoo.md`) and the one-line-per-architecture summary (`summary.md`); return the summary."""
    say = progress or (lambda line: None)
    for arch in archs:
        if is_done(out, arch):
            say(f"{arch}: done already, skipped")
            continue
        # a half-done architecture (a run cut off) starts over: no arm's stale files are read
        shutil.rmtree(arch_dir(out, arch), ignore_errors=True)
        say(f"{arch}: starting")
        run_one([arch], list(dtypes), list(arms), out=arch_dir(out, arch), python=python, progress=say,
                reference=ZOO_ARMS[0] if ZOO_ARMS[0] in arms else None)
    text = gather(out, archs)
    (Path(out) / ZOO_TABLE).write_text(text + "\n")
    brief = "\n\n".join(zoo_table.summary(out, archs, dtype) for dtype in dtypes)
    (Path(out) / ZOO_SUMMARY).write_text(brief + "\n")
    return brief


def pass_failures(out: Path, archs: Sequence[str], pass_arm: str = "cleanpass",
                  reference: str = ZOO_ARMS[0]) -> list[str]:
    """One line per failed `pass_arm` row whose reference arm ran: a crash in the pass, a changed
    token or log-prob, more clones than vLLM's pass. These fail the run; an architecture that
    does not start without any pass is a row of the table, not a failure of cleanpass."""
    lines = []
    for arch in archs:
        if not is_done(out, arch):
            continue
        frame = results.read_run(arch_dir(out, arch))[0]
        for dtype, rows in frame.groupby("dtype"):
            by_arm = {r["variant"]: r for r in rows.to_dict("records")}
            ours, base = by_arm.get(pass_arm), by_arm.get(reference)
            if ours is not None and base is not None and base["ok"] and not ours["ok"]:
                lines.append(f"{arch} {dtype} {pass_arm}: {ours['error']}")
    return lines


def gather(out: Path, archs: Sequence[str]) -> str:
    """Every done architecture's table, one section each, in the order asked."""
    parts = []
    for arch in archs:
        table = arch_dir(out, arch) / check.ENGINE_DIR / check.TABLE_FILE
        if is_done(out, arch) and table.exists():
            parts.append(f"### {arch}\n\n{table.read_text().strip()}\n")
    return "\n".join(parts) or "(no architecture done)"


def default_archs(python: str | None) -> tuple[list[str], str]:
    """(architectures, "") from vLLM's registry, or ([], why not)."""
    interpreter, reason = launch.vllm_python(python)
    if interpreter is None:
        return [], reason
    return sorted(list_archs(interpreter)["kept"]), ""
