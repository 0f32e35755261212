"""cleanpass.explain: the table agrees with the pass's own report, names are the user's, the
lowering is injected (here a make_fx trace, the way a lowering hands the pass its graph)."""
from __future__ import annotations

import torch
from torch.fx.experimental.proxy_tensor import make_fx

import cleanpass
from cleanpass import decisions
from cleanpass import explain as ex
from cleanpass.__main__ import main, make_input

from . import ops as _ops  # noqa: F401  (registers the test ops)
from .helpers import trace

scale_ = torch.ops.cleanpass_test.scale_


def two_clones(x: torch.Tensor, y: torch.Tensor):
    a = y.clone()
    scale_(a, 2.0)     # y is given up (donated below) and never read again: the clone can go
    b = x.clone()
    scale_(b, 3.0)     # x is the caller's and read again: the clone must stay
    return a, b + x


def traced(fn, inputs):
    """A Lower: the make_fx graph, y donated (graph placeholders 0 and 1 are x and y). Source
    lines (``Row.where``) come from Dynamo's stack traces: tests/workloads/test_wl_explain.py."""
    gm = make_fx(fn, tracing_mode="fake")(*inputs)
    return [ex.Lowered(gm.graph, donated=(1,), inputs=("L['args'][0]", "L['args'][1]"))]


def test_rows_match_the_pass_report_and_the_check_passes():
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    result = ex.explain(two_clones, x, y, lower=traced, fold=False)
    report = cleanpass.eliminate_clones(trace(two_clones, x, y), donated=(1,), fold=False)
    assert [(r.clone, r.reason) for r in result.rows] == sorted(
        [(d.clone, d.reason) for d in report.removed + report.kept])
    by_source = {r.source: r for r in result.rows}
    assert by_source["y"].decision == "removed" and by_source["y"].bytes_saved == 2 * 4 * 8 * 4
    assert by_source["x"].decision == "kept" and by_source["x"].reason in decisions.KEEP_REASONS
    assert by_source["x"].bytes_saved is None and result.bytes_saved == 256
    assert result.exact and result.checks[0].ok
    table = result.table()
    assert "2 clones: 1 removed, 0 folded, 1 kept; 256 B less traffic" in table
    assert by_source["x"].reason in table and "bit-identical" in table
    assert torch.equal(x, x.clone())  # inputs untouched (explain compiles on copies)


def test_a_wrong_pass_result_is_reported():
    """The reference policy's view hole: it drops the clone of a view whose base is read after
    the write; explain shows the decision and the checker's DIFFERS verdict."""
    def hole(x):
        base = x * 1           # the graph's own buffer (donation is not the question here)
        c = base[0].clone()
        scale_(c, 2.0)
        return c, base + 1     # the base is read after the clone was written

    def lower(fn, inputs):
        return [ex.Lowered(trace(fn, *inputs).graph)]

    result = ex.explain(hole, torch.randn(4, 8), lower=lower, policy="vllm")
    assert [r.decision for r in result.rows] == ["removed"]
    assert not result.exact and not result.checks[0].ok
    assert "DIFFERS" in result.table()
    assert ex.explain(hole, torch.randn(4, 8), lower=lower).exact  # the sound policy keeps it


def test_user_names():
    params = ("positions", "hidden")
    assert ex.user_name("L['args'][1]", params) == "hidden"
    assert ex.user_name("L['args'][5]", params) == "input 5"
    assert ex.user_name("L['fn']._modules['layer']._modules['norm']._parameters['weight']") == "layer.norm.weight"
    assert ex.user_name("L['self']._buffers['cos_sin']") == "cos_sin"
    assert ex.user_name("L['x']") == "x" and ex.user_name("arg0_1") == "arg0_1"
    assert ex.parameters_of(two_clones) == ("x", "y")
    assert ex.parameters_of(torch.nn.Linear(2, 2)) == ("input",)


def test_capture_hands_over_inductors_graph_after_the_given_pass():
    """cleanpass's own lowering: the post-grad graph as it reaches the custom post pass."""
    seen = []
    graphs = ex.capture(lambda x: (x * 2).sin(), (torch.randn(4),), graph_pass=lambda g: seen.append(len(g.nodes)))
    assert len(graphs) == 1 and seen == [len(graphs[0].graph.nodes)]
    assert graphs[0].inputs == ("L['args'][0]",) and graphs[0].donated == ()
    result = ex.explain(lambda x: (x * 2).sin(), torch.randn(4))
    assert result.rows == [] and result.checks == [ex.NOTHING_TO_CHECK] and result.exact


def test_cli_inputs_and_errors(capsys):
    g = torch.Generator().manual_seed(0)
    assert make_input("8x4:int64", g).tolist()[1] == [4, 5, 6, 7]
    assert make_input("3x2", g).dtype == torch.float32 and make_input("2:bfloat16", g).dtype == torch.bfloat16
    assert main(["explain", "no_such_module_xyz:f"]) == 2
    assert main(["explain", "torch:sin", "--inputs", "4:nodtype"]) == 2
    capsys.readouterr()
    assert main(["explain", "torch:sin", "--inputs", "4"]) == 0
    assert "no clone reached the pass" in capsys.readouterr().out


def test_cleanpass_imports_nothing_of_the_project():
    """The dependency runs harness -> workloads -> cleanpass: explain takes the lowering as an
    argument because cleanpass may not import workloads (function-level imports included)."""
    import ast
    from pathlib import Path

    root = Path(cleanpass.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("workloads", "harness", "tests")]
    assert found == []
