"""The HTML report opens in a real browser: headless Chromium loads every figure and table.

Chromium comes from Debian's ``chromium`` package. When it is missing, the session fixture
installs it with ``scripts/ensure_chromium.sh`` (root only). If it still is not there the test
FAILS when running as root or under CI (``CI`` set): a report nobody checked must not pass
silently. A developer without root and outside CI gets a skip with the command to run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from harness.store.baseline import load_baseline, load_run, write_baseline
from harness.report.document import build_report
from tests.harness.harness_synth import make_rows, synth_run

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Runs after every image has loaded or failed; writes what the page saw into the DOM, which
# --dump-dom then prints.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre');
  out.id = 'cp-probe';
  out.textContent = JSON.stringify({
    images: Array.from(document.images).map(function (i) {
      return {src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth,
              height: i.naturalHeight};
    }),
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('table tr').length,
    backticks: document.body.innerText.split('`').length - 1,
    code: document.querySelectorAll('code').length,
    emptyColumns: Array.from(document.querySelectorAll('table')).flatMap(function (t, ti) {
      var head = Array.from(t.querySelectorAll('thead th')).map(function (h) { return h.textContent; });
      var body = Array.from(t.querySelectorAll('tbody tr')).map(function (r) {
        return Array.from(r.children).map(function (c) { return c.textContent.trim(); });
      });
      return head.map(function (h, j) { return [ti, h, body.some(function (r) { return r[j]; })]; })
                 .filter(function (c) { return !c[2] || !c[1].trim(); });
    }),
    headings: Array.from(document.querySelectorAll('h2')).map(function (h) { return h.textContent; })
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    must = os.geteuid() == 0 or bool(os.environ.get("CI"))
    if path is None and os.geteuid() == 0:
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_chromium.sh")], check=False, timeout=900)
        path = shutil.which("chromium")
    if path is None:
        msg = "chromium not installed: run scripts/ensure_chromium.sh (apt-get install chromium) as root"
        if must:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="cp-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    rows = make_rows(variants=("lowered", "vllm", "cleanpass", "ideal"), tokens=(1, 32, 2048))
    baseline = write_baseline(load_run(synth_run(root / "base", rows=rows, seed=1)),
                              root / "baseline.parquet")
    run = synth_run(root / "run", rows=rows, seed=2, slowdown={"vllm": 1.3})
    build_report(load_run(run), run, against=load_baseline(baseline))
    return run


def _probe(chromium: str, report_dir: Path) -> dict:
    """What the page shows once loaded in headless Chromium (``PROBE``'s JSON)."""
    page = (report_dir / "report.html").read_text()
    probe_page = report_dir / "probe.html"  # same folder: the figures' relative paths resolve
    probe_page.write_text(page.replace("</body>", PROBE + "\n</body>"))
    done = _chromium(chromium, "--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="cp-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not run; DOM starts: {done.stdout[:500]}"
    return json.loads(html.unescape(found.group(1)))


def test_report_renders_with_figures_and_tables(chromium, report_dir):
    probe = _probe(chromium, report_dir)

    srcs = {i["src"] for i in probe["images"]}
    assert srcs == {"figures/latency_vs_baseline.png", "figures/latency_vs_tokens.png",
                    "figures/bandwidth_roofline.png", "figures/clones_bytes_removed.png"}
    for img in probe["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert probe["tables"] >= 7 and probe["rows"] > 50
    assert {"Comparison with the baseline", "Latency against token count", "Numerics",
            "Bandwidth against the measured peak"} <= set(probe["headings"])
    assert probe["headings"][0] == "At a glance"


def test_report_shows_markdown_rendered_and_no_empty_column(chromium, report_dir):
    """The page is the markdown rendered: `code` spans (the headline's workload names) become
    code elements, no backtick is left in the text a reader sees, and every table column holds
    a value in some row under a named header."""
    probe = _probe(chromium, report_dir)
    assert "`" in (report_dir / "report.md").read_text()  # the markdown has code spans to render
    assert probe["backticks"] == 0 and probe["code"] > 5
    assert probe["emptyColumns"] == []


def test_report_screenshot_is_not_blank(chromium, report_dir, tmp_path):
    shot = tmp_path / "report.png"
    done = _chromium(chromium, "--window-size=1200,2400", f"--screenshot={shot}",
                     (report_dir / "report.html").as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        gray = im.convert("L")
        lo, hi = gray.getextrema()
        # text, tables and plots: plenty of dark pixels on a light page
        dark = sum(gray.histogram()[:128])
    assert im.size == (1200, 2400) and hi - lo > 200 and dark > 0.01 * 1200 * 2400
