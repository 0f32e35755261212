"""Shared pytest setup: the reference policy's score from the property test, in the summary."""
from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("tests.cleanpass.test_property")
    stats = getattr(module, "REFERENCE_STATS", None)
    if not stats or not stats["graphs"]:
        return
    terminalreporter.write_sep("-", "cleanpass property test")
    right = stats["vllm_right"]
    as_many = 100.0 * (right - stats["vllm_right_removed_more"]) / right if right else 100.0
    terminalreporter.write_line(
        f"{stats['graphs']} random graphs, {stats['clones']} clones: sound removed "
        f"{stats['removed_sound']} and folded {stats['folded_sound']}, vllm removed "
        f"{stats['removed_vllm']}; vllm got {stats['wrong']} graphs wrong and asserted on "
        f"{stats['asserted']}; where vllm was right ({right} graphs) sound removed at least as "
        f"many on {as_many:.1f}% (vllm removed more on {stats['vllm_right_removed_more']})")
