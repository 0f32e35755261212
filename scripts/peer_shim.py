"""pytest plugin: run vLLM's own clone-elimination tests with one of our policies in its place.

Loaded with `-p peer_shim` by `peer_unit_tests.py`. CLEANPASS_PEER_POLICY picks the pass:
`real` leaves vLLM alone; `vllm` or `sound` replaces, before the tests are imported, the pass
class and the write predicate in vLLM's module by stand-ins with the same interface backed by
`cleanpass`. CLEANPASS_PEER_RESULTS names a JSON file that gets each test's outcome.
"""
from __future__ import annotations

import json
import os
from typing import Any

POLICY = os.environ.get("CLEANPASS_PEER_POLICY", "real")
_OUTCOMES: dict[str, str] = {}


def _stand_ins(policy: str) -> tuple[type, Any]:
    from torch import fx
    from vllm.compilation.passes.inductor_pass import get_pass_context

    import cleanpass
    from cleanpass import reference
    from cleanpass.mutation import node_effect

    class CleanpassCloneElimination:
        """vLLM's pass interface (built from a config, called on a graph) over our policy."""

        def __init__(self, vllm_config: Any) -> None:
            self.vllm_config = vllm_config

        def __call__(self, graph: fx.Graph) -> None:
            ids = get_pass_context().donated_input_ids or set()
            position = {node: index for index, node in enumerate(graph.nodes)}
            placeholders = graph.find_nodes(op="placeholder")
            donated = tuple(i for i, node in enumerate(placeholders) if position[node] in ids)
            cleanpass.eliminate_clones_in_graph(graph, donated, policy)

    def writes(user: fx.Node, node: fx.Node) -> bool:
        if policy == "vllm":
            return reference.writes_clone(user, node)
        return node in node_effect(user).writes

    return CleanpassCloneElimination, writes


def pytest_configure(config) -> None:
    if POLICY == "real":
        return
    from vllm.compilation.passes.ir import clone_elimination

    clone_elimination.UnsafeCloneEliminationPass, clone_elimination.user_writes_to_node = \
        _stand_ins(POLICY)


def pytest_runtest_logreport(report) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.nodeid.split("::", 1)[-1]] = report.outcome


def pytest_sessionfinish(session) -> None:
    path = os.environ.get("CLEANPASS_PEER_RESULTS")
    if path:
        with open(path, "w") as handle:
            json.dump(_OUTCOMES, handle, indent=1)
