"""Shared pytest setup: the reference policy's score from the property test, and the side-by-side
pass times of `make bench-pass`, in the summary."""
from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter):
    _side_by_side(terminalreporter)
    module = sys.modules.get("tests.cleanpass.test_property")
    traces = (("fake", getattr(module, "REFERENCE_STATS", None)), ("real", getattr(module, "REAL_STATS", None)))
    traces = [(mode, stats) for mode, stats in traces if stats and stats["graphs"]]
    if not traces:
        return
    terminalreporter.write_sep("-", "cleanpass property test")
    for mode, stats in traces:  # graphs traced on fake tensors, and on real tensors
        terminalreporter.write_line(
            f"{mode} traces: {stats['graphs']} random graphs, {stats['clones']} clones: sound removed "
            f"{stats['removed_sound']} and folded {stats['folded_sound']}, vllm removed "
            f"{stats['removed_vllm']}; vllm got {stats['wrong']} graphs wrong and asserted on "
            f"{stats['asserted']}; {module.completeness(stats)}")


def _side_by_side(terminalreporter) -> None:
    measured: dict = {}
    for name, module in list(sys.modules.items()):  # the module names depend on the import mode
        if name.endswith(("test_pass_speed", "test_wl_scale")):
            measured.update(getattr(module, "SIDE_BY_SIDE", None) or {})
    if not measured:
        return
    terminalreporter.write_sep("-", "cleanpass pass time, policies side by side (medians)")
    for label, (rounds, seconds) in measured.items():
        sound, vllm = seconds["sound"], seconds["vllm"]
        terminalreporter.write_line(f"{label}, {rounds} alternating rounds: sound {sound * 1e3:.2f} ms, "
                                    f"vllm {vllm * 1e3:.2f} ms, sound/vllm {sound / vllm:.2f}x")
