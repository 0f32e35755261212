"""The pass as an Inductor `CustomGraphPass` (use as `post_grad_custom_post_pass`).

Thin on purpose: it reads the donation context once per graph, runs `eliminate_clones_in_graph`,
keeps the report, logs kept clones at debug level and, when asked, dumps the graph before and
after. Its `uuid()` hashes our source files, the policy, whether it folds and whether it is on, so the FX graph
cache can never hand one arm of an A/B run the other arm's code.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Iterable

import torch

from ._compat import CustomGraphPassBase
from .decisions import CloneReport
from .donation import current_donated
from .eliminate import POLICIES, eliminate_clones_in_graph

log = logging.getLogger(__name__)
_SOURCES = tuple(str(p) for p in sorted(Path(__file__).parent.glob("*.py")))


def hash_files(paths: Iterable[str | os.PathLike], extra: str = "") -> str:
    """Hex digest of the files' bytes plus ``extra``: the cache key of a pass built from them.

    Any pass that wraps this one (a lowering + cleanpass pipeline) keys its ``uuid()`` with it too,
    so one edit to any source file invalidates every cached graph that used it.
    """
    digest = hashlib.sha256()
    for path in sorted({os.fspath(p) for p in paths}):
        with open(path, "rb") as handle:
            digest.update(handle.read())
    digest.update(extra.encode())
    return digest.hexdigest()


class CloneEliminationPass(CustomGraphPassBase):
    """Clone elimination for Inductor's post-grad graph; `reports` collects one per graph."""

    def __init__(self, policy: str = "sound", enabled: bool = True,
                 dump_dir: str | os.PathLike | None = None, fold: bool = True) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
        self.policy = policy
        self.enabled = enabled
        self.fold = fold and policy == "sound"
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.reports: list[CloneReport] = []

    def __call__(self, graph: torch.fx.Graph) -> None:
        if not self.enabled:
            return
        index = len(self.reports)
        self._dump(graph, index, "before")
        report = eliminate_clones_in_graph(graph, current_donated(), self.policy, self.fold)
        self._dump(graph, index, "after")
        self.reports.append(report)

    def _dump(self, graph: torch.fx.Graph, index: int, stage: str) -> None:
        if self.dump_dir is None:
            return
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        (self.dump_dir / f"{index:03d}_{self.policy}_{stage}.txt").write_text(str(graph))

    def uuid(self) -> str:
        return hash_files(_SOURCES, extra=f"policy={self.policy};enabled={self.enabled};fold={self.fold}")
