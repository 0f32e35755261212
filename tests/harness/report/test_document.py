"""Report generation: markdown + HTML with tables and PNG figures, with and without a baseline."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from PIL import Image

from harness.store.baseline import load_run, write_baseline
from harness.report.document import build_report, markdown_table
from tests.harness.cli_calls import call
from tests.harness.harness_synth import VARIANTS, make_rows, synth_run

FIGURES = {"latency_vs_tokens.png", "bandwidth_roofline.png", "clones_bytes_removed.png"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run (with a failing vllm row and a 30% slower vllm) and a baseline, reported twice:
    alone into ``plain/`` and against the baseline into the run directory (via the CLI)."""
    root = tmp_path_factory.mktemp("report")
    rows = make_rows(variants=VARIANTS, tokens=(1, 32, 2048), dtypes=("bfloat16", "float16"))
    failing = (rows.variant == "vllm") & (rows.num_tokens == 32)
    rows.loc[failing, ["ok", "status", "error"]] = (False, "fail", "input 0 was written (not donated)")
    rows["expected_wrong"] = failing & (rows.dtype == "bfloat16")  # predicted for bf16 only
    base = synth_run(root / "base", rows=rows, seed=1)
    baseline = write_baseline(load_run(base), root / "baseline.parquet")
    run = synth_run(root / "run", rows=rows, seed=2, slowdown={"vllm": 1.3})
    plain = build_report(load_run(run), root / "plain")
    cli = _cli("--run", str(run), "--against", str(baseline))
    return run, plain, cli


def _cli(*argv: str) -> tuple[int, list[str]]:
    return call("report", *argv)


def test_report_has_tables_and_figures(runs):
    _, paths, _ = runs
    assert {p.name for p in paths.figures} == FIGURES
    for fig in paths.figures:
        with Image.open(fig) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
    md = paths.markdown.read_text()
    for title in ("Headline", "Latency against token count", "Bandwidth against the measured peak",
                  "Clones and bytes removed per workload", "Numerics"):
        assert f"## {title}" in md
    assert md.count("](figures/") == 3
    assert "input 0 was written" in md  # the failing vllm rows are listed
    numerics = md[md.index("## Numerics"):]
    unexpected = numerics[numerics.index("**Unexpected failures**"):numerics.index("**Expected wrong")]
    expected = numerics[numerics.index("**Expected wrong (as predicted)**"):]
    assert "float16" in unexpected and "bfloat16" not in unexpected
    assert "bfloat16" in expected and "| float16" not in expected
    page = paths.html.read_text()
    assert page.count("<img ") == 3 and page.count("<table") >= 6
    assert "Comparison with the baseline" not in md


def test_report_shows_in_run_ratios(runs):
    _, paths, _ = runs
    md = paths.markdown.read_text()
    assert "## In-run ratios" in md
    # 2 workloads x 2 dtypes x 3 token counts, one column per partner
    row = re.search(r"\| rms_norm \| bfloat16 \| 2048 \| 4096 \| (.*) \|", md)
    assert row
    ideal, lowered, native = (float(c.split()[0][1:]) for c in row.group(1).split(" | "))
    # synthetic timings: lowered keeps its clone (slower), ideal and native match cleanpass
    assert lowered < 0.6 and abs(ideal - 1) < 0.05 and abs(native - 1) < 0.05

def test_report_against_baseline_shows_gate_findings(runs):
    run, _, (code, lines) = runs
    assert code == 0, lines
    md = (run / "report.md").read_text()
    assert "## Comparison with the baseline" in md
    assert "Gate verdict: **FAIL**" in md
    assert re.search(r"\| REGRESSION \| vllm rms_norm bf16 T=2048 H=4096 \| latency_us_p50 \|", md)
    assert (run / "figures" / "latency_vs_baseline.png").is_file()
    assert "<strong>FAIL</strong>" in (run / "report.html").read_text()


def test_report_cli_unusable_input(tmp_path):
    assert _cli("--run", str(tmp_path / "missing"))[0] == 2


def test_report_survives_rows_without_latency(tmp_path):
    rows = make_rows(device="cpu", device_name="cpu")
    rows["latency_us_p50"] = float("nan")
    rows["gbps"] = float("nan")
    rows.loc[0, ["status", "error"]] = ["skipped", "skipped: no triton"]
    run = synth_run(tmp_path / "r", rows=rows, device="cpu", device_name="cpu")
    paths = build_report(load_run(run), run)
    assert {p.name for p in paths.figures} == {"clones_bytes_removed.png"}
    assert "1 skipped" in paths.markdown.read_text()


def test_markdown_table_escapes_pipes():
    text = markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1.5]}))
    assert text.splitlines()[2] == "| x\\|y | 1.5 |"


def test_attribution_table_becomes_a_stacked_breakdown(tmp_path):
    """A run with attribution.parquet gets the per-workload stacked bar; one without does not."""
    from harness.store import results

    run = synth_run(tmp_path / "run", rows=make_rows(variants=VARIANTS, tokens=(32, 2048), dtypes=("bfloat16",)))
    records = [dict(workload=w, variant=v, dtype="bfloat16", num_tokens=t, hidden=4096, model="", device="cuda",
                    kernel_class=c, us=float(len(c) + (5 if v == "lowered" and c == "copy" else 0)), kernels=1.0)
               for w in ("rms_norm", "donated_chain") for v in ("lowered", "cleanpass") for t in (32, 2048)
               for c in results.KERNEL_CLASSES]
    (run / results.ATTRIBUTION_FILE).write_bytes(results.attribution_frame(records).to_parquet(index=False))
    paths = build_report(load_run(run), tmp_path / "out")
    assert "kernel_time_breakdown.png" in {p.name for p in paths.figures}
    text = paths.markdown.read_text()
    assert "## Where the time goes" in text
    section = text.split("## Where the time goes", 1)[1]
    assert "| donated_chain | 2048 | bfloat16 | lowered |" in section  # largest token count only
    assert "| donated_chain | 32 |" not in section.split("**Copy time")[0]
    with Image.open(tmp_path / "out" / "figures" / "kernel_time_breakdown.png") as img:
        assert img.size[0] > 300
    plain = build_report(load_run(synth_run(tmp_path / "old")), tmp_path / "old_out")
    assert "kernel_time_breakdown.png" not in {p.name for p in plain.figures}
