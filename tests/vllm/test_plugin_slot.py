"""cleanpass's vLLM plugin without vLLM: the slot it takes, its refusals, donation and report.

vLLM's pass-manager module is stood in by a module object with the same shape (a manager
whose `configure` builds the slot from a module-level name and whose `__call__` runs
`self.clone_elimination`); the real module is exercised by tests/vllm/test_vllm_pipeline.py
where vLLM is installed.
"""
from __future__ import annotations

import logging
import sys
import types

import pytest
import torch
from torch import fx

from cleanpass import vllm_plugin
from cleanpass.decisions import CloneReport, Decision

MODULE = vllm_plugin.SLOT_MODULE


class VllmPass:
    """Stands in for vLLM's UnsafeCloneEliminationPass."""


def _manager_source(slot_name: str, attribute: str) -> str:
    return f'''
class PostGradPassManager:
    def configure(self, config):
        self.{attribute} = {slot_name}(config)

    def __call__(self, graph):
        self.{attribute}(graph)
'''


def _fake_vllm(monkeypatch, slot_name: str = "UnsafeCloneEliminationPass",
               attribute: str = "clone_elimination") -> types.ModuleType:
    module = types.ModuleType(MODULE)
    module.__dict__[vllm_plugin.SLOT_NAME] = VllmPass
    if slot_name != vllm_plugin.SLOT_NAME:
        module.__dict__[slot_name] = VllmPass
    exec(_manager_source(slot_name, attribute), module.__dict__)
    monkeypatch.setitem(sys.modules, MODULE, module)
    return module


def test_register_takes_the_slot_once(monkeypatch, caplog):
    module = _fake_vllm(monkeypatch)
    with caplog.at_level(logging.INFO, logger="vllm.cleanpass"):
        assert vllm_plugin.register() is True
        assert vllm_plugin.register() is True  # vLLM calls it in every process, maybe twice
    assert module.UnsafeCloneEliminationPass is vllm_plugin.VllmClonePass
    assert sum("clone slot" in r.getMessage() for r in caplog.records) == 1
    manager = module.PostGradPassManager()
    manager.configure(config=None)
    assert isinstance(manager.clone_elimination, vllm_plugin.VllmClonePass)


def test_the_off_switch_leaves_vllms_pass(monkeypatch):
    module = _fake_vllm(monkeypatch)
    monkeypatch.setenv(vllm_plugin.SWITCH, "0")
    assert vllm_plugin.register() is False
    assert module.UnsafeCloneEliminationPass is VllmPass


@pytest.mark.parametrize("slot_name, attribute, why", [
    ("RenamedCloneEliminationPass", "clone_elimination", "no longer builds"),
    ("UnsafeCloneEliminationPass", "clone_cleanup", "no longer runs"),
])
def test_an_unknown_pipeline_is_refused_with_one_warning(monkeypatch, caplog, slot_name, attribute, why):
    module = _fake_vllm(monkeypatch, slot_name, attribute)
    with caplog.at_level(logging.WARNING, logger="vllm.cleanpass"):
        assert vllm_plugin.register() is False
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert why in record.getMessage() and "vLLM's clone pass stays" in record.getMessage()
    assert module.UnsafeCloneEliminationPass is VllmPass


def test_without_vllm_the_plugin_refuses(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, MODULE, None)  # import raises ModuleNotFoundError
    with caplog.at_level(logging.WARNING, logger="vllm.cleanpass"):
        assert vllm_plugin.register() is False
    assert "could not be imported" in caplog.text


def _graph(placeholders: int, first_op: bool = False) -> fx.Graph:
    graph = fx.Graph()
    if first_op:
        graph.call_function(torch.ops.aten.zeros.default, ([1],))
    nodes = [graph.placeholder(f"p{i}") for i in range(placeholders)]
    graph.output(tuple(nodes))
    return graph


def test_donated_node_indices_become_placeholder_positions():
    assert vllm_plugin.donated_positions(_graph(4), [3, 1]) == (1, 3)
    assert vllm_plugin.donated_positions(_graph(4), []) == ()
    # an index that names no placeholder: not the graph vLLM described
    assert vllm_plugin.donated_positions(_graph(2), [5]) is None
    assert vllm_plugin.donated_positions(_graph(2, first_op=True), [0]) is None
    assert vllm_plugin.donated_positions(_graph(2, first_op=True), [1, 2]) == (0, 1)


def test_the_report_line_names_every_kept_reason():
    report = CloneReport(policy="sound")
    report.removed.append(Decision("c0", "x", "removed", 1024))
    report.folded.append(Decision("c1", "r", "folded", 2048))
    report.kept += [Decision("c2", "v", "strided-output", 512), Decision("c3", "v", "strided-output", 512)]
    record = vllm_plugin.report_record(7, report, "[1, 8192]")
    assert (record["clones_before"], record["clones_after"], record["bytes_saved"]) == (4, 2, 3072)
    line = vllm_plugin.report_line(record)
    assert line.startswith("cleanpass: graph 7 [1, 8192]: clones 4 -> 2 (removed 1, folded 1, kept 2: "
                           "strided-output=2)")


def test_uuid_changes_with_folding_and_is_stable():
    folding, plain = vllm_plugin.VllmClonePass(fold=True), vllm_plugin.VllmClonePass(fold=False)
    assert folding.uuid() != plain.uuid() and folding.uuid() == vllm_plugin.VllmClonePass(fold=True).uuid()
