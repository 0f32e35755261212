"""The README a newcomer reads in five minutes: short, its links resolve, and every command it
shows is run, here or by CI (``.ci/run``: ``make test``, ``make gate-smoke``)."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAX_LINES = 200

#: Shell lines the README shows that CI runs itself (.ci/run), or that a test below runs.
RUN_BY_CI = {"make test"}
RUN_HERE = {"make bench", "PYTHONPATH=docs/examples .venv/bin/python -m cleanpass explain",
            "PYTHONPATH=docs/examples .venv/bin/python -m harness run"}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def _shell_lines() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readme_is_short():
    assert len(README.read_text().splitlines()) <= MAX_LINES


def test_every_link_resolves():
    for target in re.findall(r"\]\(([^)]+)\)", README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        page = (REPO / path) if path else README
        assert page.exists(), f"README links to {target}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"README links to {target}: no such heading"


def test_every_shell_command_is_run_by_a_test_or_by_ci():
    shown = _shell_lines()
    assert shown, "the README shows its commands in ```bash blocks"
    for line in shown:
        assert line in RUN_BY_CI or any(line.startswith(known) for known in RUN_HERE), line
    ci = (REPO / ".ci" / "run").read_text()
    assert all(command in ci for command in RUN_BY_CI)


def test_make_bench_is_the_harness_run_the_cli_tests_run():
    """``make bench`` is ``harness run --suite default``; the ending it prints (brief, two paths,
    the report written) is tests/harness/test_cli.py::test_a_run_ends_in_a_brief_the_paths_and_a_report,
    and the whole suite's wall time is measured by hand (docs/harness.md)."""
    recipe = subprocess.run(["make", "-n", "--always-make", "--no-print-directory", "bench"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    assert recipe[-1].endswith("-m harness run --suite default --device auto")


def _run_shown(prefix: str, cwd: Path) -> subprocess.CompletedProcess:
    """The README's command as shown, with this interpreter for ``.venv/bin/python`` and paths
    made absolute, run from ``cwd`` (so a run directory lands there, not in the checkout)."""
    line = next(line for line in _shell_lines() if line.startswith(prefix))
    words = shlex.split(line)
    env = dict(os.environ)
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = os.pathsep.join([str(REPO / value), str(REPO)])
    words = [sys.executable if w == ".venv/bin/python" else w for w in words]
    return subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_explain_command(tmp_path):
    done = _run_shown("PYTHONPATH=docs/examples .venv/bin/python -m cleanpass explain", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 clones: 1 removed, 1 folded, 0 kept" in done.stdout and "bit-identical" in done.stdout


def test_the_outside_workload_command(tmp_path):
    done = _run_shown("PYTHONPATH=docs/examples .venv/bin/python -m harness run", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "my_scaled_norm" in done.stdout and "report:" in done.stdout
    assert len(list((tmp_path / "results" / "local").iterdir())) == 1


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_every_python_block_runs(index, tmp_path):
    """Each example as a user runs it: saved to a file, run by Python from another folder."""
    source = _blocks("python")[index]
    script = tmp_path / f"readme_example_{index}.py"
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "each README example prints what its comment says"
    for expected in re.findall(r'# "([^"]+)"', source):  # the outputs quoted in its comments
        stem = expected.split("...")[0].strip()
        assert stem in done.stdout, (stem, done.stdout[-2000:])


def test_the_findings_table_is_the_committed_baseline():
    """Every figure of "What it finds" is read from results/baselines/cpu.parquet (T=32)."""
    import pandas as pd

    rows = pd.read_parquet(REPO / "results" / "baselines" / "cpu.parquet")
    rows = rows[rows["num_tokens"] == 32].set_index(["workload", "variant"])
    section = README.read_text().split("## What it finds")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(table) == 7
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        wl = re.match(r"`(\w+)` \((\d+)\)", cells[0])
        name, r = wl.group(1), lambda v: rows.loc[(wl.group(1), v)]
        assert int(wl.group(2)) == r("lowered")["hidden"]
        assert cells[1] == f"{r('lowered')['clones_before']} -> {r('vllm')['clones_after']} -> {r('cleanpass')['clones_after']}"
        assert cells[2] == f"{r('lowered')['copies']} -> {r('cleanpass')['copies']}"
        mb = [f"{r(v)['bytes_exact'] / 1e6:.3f}" for v in ("lowered", "cleanpass", "ideal")]
        assert cells[3] == f"{mb[0]} -> {mb[1]} ({mb[2]})", name
        assert cells[4].startswith("yes" if r("vllm")["ok"] else "**no**"), name
