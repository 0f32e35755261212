"""Shared pytest setup: the reference policy's score from the property test, in the summary."""
from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter):
    module = sys.modules.get("tests.cleanpass.test_property")
    stats = getattr(module, "REFERENCE_STATS", None)
    if not stats or not stats["graphs"]:
        return
    terminalreporter.write_sep("-", "cleanpass property test")
    terminalreporter.write_line(
        f"{stats['graphs']} random graphs, {stats['clones']} clones: sound removed "
        f"{stats['removed_sound']}, vllm removed {stats['removed_vllm']}; vllm got "
        f"{stats['wrong']} graphs wrong and asserted on {stats['asserted']}; where vllm was right "
        f"it removed more than sound on {stats['vllm_right_removed_more']}")
