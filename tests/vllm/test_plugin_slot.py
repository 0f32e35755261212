"""cleanpass's vLLM plugin without vLLM: the slot it takes, its refusals, donation and report.

vLLM's pass-manager module is stood in by a module object with the same shape (a manager
whose `configure` builds the slot from a module-level name and whose `__call__` runs
`self.clone_elimination`); the real module is exercised by tests/vllm/test_vllm_pipeline.py
where vLLM is installed.
"""
from __future__ import annotations

import json
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


def _pass_context(monkeypatch, donated: set[int]) -> None:
    """vLLM's pass context as the slot reads it (`get_pass_context()` inside a compile)."""
    context = types.SimpleNamespace(donated_input_ids=donated, compile_range="[1, 8192]")
    module = types.ModuleType("vllm.compilation.passes.inductor_pass")
    module.get_pass_context = lambda: context
    monkeypatch.setitem(sys.modules, module.__name__, module)


def _clone_graph() -> fx.Graph:
    """x donated: clone(x) then an in-place write to the copy; the clone goes."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        value = torch.empty(4, 8)
    graph = fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = value
    copy = graph.call_function(torch.ops.aten.clone.default, (x,))
    copy.meta["val"] = value.clone()
    written = graph.call_function(torch.ops.aten.mul_.Tensor, (copy, 2.0))
    written.meta["val"] = copy.meta["val"]
    graph.output((copy,))
    return graph


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_the_json_report_is_written_at_any_log_level_and_the_line_only_when_logged(
        monkeypatch, caplog, tmp_path, level):
    """The per-decision record is built only where someone reads it: the JSON report (always,
    once asked for) and the INFO line (only when INFO is on)."""
    _pass_context(monkeypatch, {0})
    monkeypatch.setenv(vllm_plugin.REPORT_DIR, str(tmp_path))
    slot = vllm_plugin.VllmClonePass()
    with caplog.at_level(level, logger="vllm.cleanpass"):
        slot(_clone_graph())
    (written,) = tmp_path.glob("*.json")
    record = json.loads(written.read_text())
    assert (record["clones_before"], record["clones_after"], len(record["removed"])) == (1, 0, 1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cleanpass: graph")]
    assert len(lines) == (1 if level == logging.INFO else 0)
    assert slot.reports[0].clones_after == 0


def test_without_a_report_dir_or_info_log_the_slot_still_decides(monkeypatch, caplog):
    _pass_context(monkeypatch, {0})
    monkeypatch.delenv(vllm_plugin.REPORT_DIR, raising=False)
    slot = vllm_plugin.VllmClonePass()
    graph = _clone_graph()
    with caplog.at_level(logging.WARNING, logger="vllm.cleanpass"):
        slot(graph)
    assert not graph.find_nodes(op="call_function", target=torch.ops.aten.clone.default)
    assert slot.reports[0].clones_before == 1 and not caplog.records
