"""``workloads.explain``: cleanpass.explain with our lowering, on a transformers Llama layer in
one call; its table agrees with the report of the pass the pipeline runs on the same layer."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from cleanpass.__main__ import main
from workloads import explain, hf, pipeline
from workloads.dims import ModelDims
from workloads.models import _hf

pytest.importorskip("transformers")

TINY = ModelDims("test-tiny", 64, 4, 2, 16, 128, 1e-6)
TOKENS = 8


@pytest.fixture(scope="module")
def layer() -> torch.nn.Module:
    return _hf.make_model("llama", TINY, 1, torch.float32, "cpu", seed=3).layers[0]


def test_a_llama_layer_in_one_call_agrees_with_the_pass_report(layer):
    positions, hidden = torch.arange(TOKENS), torch.randn(TOKENS, TINY.hidden)
    result = explain.explain(layer, positions, hidden)

    compiled = pipeline.compile_fn(hf.adapt(layer), policy="sound", dynamic=False)
    with torch.no_grad():
        compiled(positions, hidden.clone())
    report = compiled.reports[-1]

    assert len(result.reports) == 1
    decided = {d.clone: d for d in report.removed + report.folded + report.kept}
    assert {r.clone: r.reason for r in result.rows} == {c: d.reason for c, d in decided.items()}
    assert Counter(r.decision for r in result.rows) == Counter(
        {"removed": len(report.removed), "folded": len(report.folded), "kept": len(report.kept)})
    assert result.bytes_saved == sum(2 * d.bytes for d in report.removed + report.folded)
    # the layer's clones: rms_norm and the post-attention norm on the caller's hidden (folded),
    # rotary's q and k and the o_proj output (removed)
    assert (len(report.removed), len(report.folded), len(report.kept)) == (3, 2, 0)
    rows = {r.clone: r for r in result.rows}
    folded = [r for r in result.rows if r.decision == "folded"]
    assert {r.source for r in folded} == {"hidden"}, result.table()
    assert any("q_proj" in r.source and r.made_for.startswith("rotary_embedding") for r in rows.values())
    assert all(r.where.startswith("hf.py:") for r in result.rows), result.table()
    assert result.exact and result.checks[0].ok
    table = result.table()
    assert "5 clones: 3 removed, 2 folded, 0 kept" in table and "bit-identical" in table


def test_the_cli_with_our_lowering(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_norms.py").write_text(
        "import torch\nimport workloads  # registers the IR ops\n\n"
        "def norm_twice(x, w):\n"
        "    y = torch.ops.cleanpass_ir.rms_norm(x, w, 1e-6)\n"
        "    return torch.ops.cleanpass_ir.rms_norm(y, w, 1e-6) + x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["explain", "my_norms:norm_twice", "--inputs", "8x64", "64", "--lower", "workloads.explain:lower"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 clones: 1 removed, 1 folded, 0 kept; 8.0 KiB less traffic per call" in out
    assert "my_norms.py:5  y = torch.ops.cleanpass_ir.rms_norm(x, w, 1e-6)" in out
