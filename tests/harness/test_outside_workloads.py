"""Workloads from outside the repo run like catalog ones: the documented example, named with
``--workloads-module`` or registered by an installed package's entry point."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import cli
from harness.run import suites
from harness.store import results
from workloads import catalog

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "my_workloads.py"


@pytest.fixture
def example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    yield
    sys.modules.pop("my_workloads", None)


def test_the_documented_example_is_the_file_the_tests_run():
    page = (REPO / "docs" / "workloads.md").read_text()
    source = EXAMPLE.read_text()
    assert source.strip() in page, "docs/workloads.md must show docs/examples/my_workloads.py verbatim"
    assert len(source.splitlines()) <= 25


def test_harness_run_takes_a_workload_from_a_module(example_on_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(suites.PLANS, "smoke", suites.PLANS["test"])
    code = cli.main(["run", "--suite", "smoke", "--device", "cpu", "--workloads-module", "my_workloads",
                     "--workloads", "my_scaled_norm", "--no-progress", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr()
    df = results.read_run(tmp_path / "run")[0].set_index("variant")
    assert set(df["workload"]) == {"my_scaled_norm"}
    # the lowering's clone of the kept input is folded: cleanpass leaves none, bit for bit
    assert df.loc["lowered", "clones_after"] == 1 and df.loc["cleanpass", "clones_after"] == 0
    assert df.loc["cleanpass", "bitwise_equal"] and df["ok"].all()
    assert (tmp_path / "run" / "report.html").is_file()


def test_an_entry_point_registers_a_workload(example_on_path, tmp_path, monkeypatch):
    """An installed package's ``cleanpass.workloads`` entry point (a dist-info on sys.path)."""
    dist = tmp_path / "my_workloads_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-workloads-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{catalog.ENTRY_POINT_GROUP}]\nmine = my_workloads\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = catalog.all_workloads()
    assert "my_scaled_norm" in found and "rms_norm" in found
    assert catalog.get("my_scaled_norm") is found["my_scaled_norm"]


def test_a_bad_module_or_a_taken_name_fails_clearly(tmp_path, monkeypatch):
    (tmp_path / "nothing_here.py").write_text("X = 1\n")
    (tmp_path / "taken.py").write_text(
        "from workloads.catalog import get\nWORKLOAD = type(get('rms_norm'))('rms_norm', 'again', {})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="neither WORKLOAD nor WORKLOADS"):
        catalog.all_workloads(["nothing_here"])
    with pytest.raises(ValueError, match="'rms_norm' is taken"):
        catalog.all_workloads(["taken"])
    assert cli.main(["run", "--device", "cpu", "--workloads-module", "no_such_module_xyz",
                     "--out", str(tmp_path / "x")]) == 2
