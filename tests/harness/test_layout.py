"""The harness's architecture, checked on its source: stages in folders, imports one way.

``run`` measures and ``judge`` judges; they meet only through ``store`` (the run on disk).
``report`` formats stored runs and judgements. ``cli`` sits on top, alone with argparse and
print(). The import graph is read with ``ast`` (function-level imports included), so a lazy
import cannot hide an edge.
"""
from __future__ import annotations

import ast
from pathlib import Path

import harness

ROOT = Path(harness.__file__).resolve().parent
STAGES = ("run", "store", "judge", "report", "vllm_engine")
#: stage -> the stages it may import (besides itself).
ALLOWED = {
    "store": set(),
    "run": {"store"},
    "judge": {"store"},
    "report": {"store", "judge"},
    # vLLM's engine on CPU: runs arms in the vLLM environment and writes a run like `run` does
    "vllm_engine": {"run", "store"},
    "cli": set(STAGES),
    "package": set(),
}
#: the one command line (every subcommand, `vllm-engine` included)
CLIS = {"harness.cli"}
TOP_LEVEL = {"harness", "harness.__main__"} | CLIS


def _module_name(path: Path) -> str:
    parts = ("harness",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _stage(module: str) -> str:
    parts = module.split(".")
    if module in CLIS or module == "harness.__main__":
        return "cli"
    if len(parts) == 1:
        return "package"
    return parts[1]


def _imports(module: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """(harness modules imported, other top-level packages imported) by one file."""
    tree = ast.parse(path.read_text(), str(path))
    ours, others = set(), set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from harness.run import api`` imports the module harness.run.api
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "harness" or name.startswith("harness."):
                ours.add(name)
            else:
                others.add(name.split(".")[0])
    return ours, others


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = _modules()
    known = set(modules)
    edges, external = {}, {}
    for name, path in modules.items():
        ours, others = _imports(name, path, known)
        edges[name] = {m for m in ours if m in known and m != name}
        external[name] = others
    return edges, external


def test_every_module_lives_in_a_stage_folder():
    loose = [m for m in _modules() if m not in TOP_LEVEL and _stage(m) not in STAGES]
    assert loose == []
    assert {_stage(m) for m in _modules()} == set(STAGES) | {"cli", "package"}


def test_stage_imports_go_one_way():
    edges, _ = _graph()
    upward = sorted(
        f"{src} -> {dst}"
        for src, dsts in edges.items()
        for dst in dsts
        if _stage(dst) != _stage(src) and _stage(dst) not in ALLOWED[_stage(src)] | {"package"}
    )
    assert upward == []


def test_import_graph_has_no_cycle():
    edges, _ = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_only_the_cli_parses_arguments_and_prints():
    _, external = _graph()
    assert {m for m, pkgs in external.items() if "argparse" in pkgs} == CLIS
    printers = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printers.append(name)
    assert set(printers) == CLIS


def test_the_checker_sees_an_upward_edge(tmp_path):
    """The graph reader itself: a store module importing judge must show up as an edge."""
    fake = tmp_path / "probe.py"
    fake.write_text("from harness.judge import gate\n\ndef f():\n    from harness.run.api import run\n")
    ours, _ = _imports("harness.store.probe", fake, set(_modules()))
    assert ours == {"harness.judge.gate", "harness.run.api"}
