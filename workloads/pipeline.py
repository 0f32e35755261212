"""One Inductor post-grad pass: lowering, then (optionally) clone elimination.

The clone-elimination stage is cleanpass with a policy name ("sound", "vllm"), or any
``ExternalCloneElimination`` (e.g. vLLM's own pass, wrapped by the harness).

``compile_fn`` wires it into ``torch.compile`` through per-compile options together with the
pre-grad donation pass, so every compile carries its own passes and config.
The stages are one ordered list that drives both ``__call__`` and ``uuid()``.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import fx

from workloads import compat, donation, lowering

log = logging.getLogger(__name__)


@dataclass
class CountReport:
    """Clone counts for the lowering-only arm (duck-types cleanpass.CloneReport)."""

    clones_before: int
    clones_after: int
    removed: list = field(default_factory=list)
    kept: list = field(default_factory=list)


def _source_files() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    files = []
    for sub in ("", "ir", "kernels"):
        d = os.path.join(here, sub)
        files += [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".py")]
    return files


class ExternalCloneElimination(Protocol):
    """A clone-elimination pass from elsewhere: edits the graph, returns a clone report
    (anything with ``clones_before`` and ``clones_after``); ``uuid()`` keys Inductor's caches."""

    def __call__(self, graph: fx.Graph, donated: tuple[int, ...]) -> Any: ...

    def uuid(self) -> str: ...


class PipelinePass(compat.CustomGraphPass):
    """post_grad_custom_post_pass = lower IR ops, then clone elimination (if a policy is given)."""

    def __init__(self, policy: str | ExternalCloneElimination | None = None, providers: Sequence[str] | None = None,
                 state: donation.DonationState | None = None) -> None:
        self.policy = policy
        self.providers = tuple(providers) if providers is not None else None
        self.state = state if state is not None else donation.DonationState()
        self.reports: list[Any] = []
        self.lowering_reports: list[lowering.LoweringReport] = []
        self.stages: list[tuple[str, Callable[[fx.Graph], None]]] = [("lowering", self._lower)]
        if policy is not None:
            self.stages.append(("cleanpass", self._cleanpass))

    def __call__(self, graph: fx.Graph) -> None:
        for name, stage in self.stages:
            t0 = time.perf_counter()
            stage(graph)
            log.debug("%s took %.1f ms", name, 1e3 * (time.perf_counter() - t0))

    def _lower(self, graph: fx.Graph) -> None:
        rep = lowering.lower_ir_ops(graph, self.providers)
        self.lowering_reports.append(rep)
        if self.policy is None:
            self.reports.append(CountReport(rep.clones_after, rep.clones_after))

    def donated(self, graph: fx.Graph) -> tuple[int, ...]:
        """The donated placeholder positions for this graph (empty if they cannot be mapped)."""
        n = sum(1 for node in graph.nodes if node.op == "placeholder")
        if self.state.donated and self.state.num_placeholders != n:
            log.warning("placeholder count changed (%s pre-grad, %s post-grad): donating nothing",
                        self.state.num_placeholders, n)
            return ()
        return self.state.donated

    def _cleanpass(self, graph: fx.Graph) -> None:
        if not isinstance(self.policy, str):
            self.reports.append(self.policy(graph, self.donated(graph)))
            return
        import cleanpass  # lazy: the pass ships separately

        self.reports.append(cleanpass.eliminate_clones_in_graph(
            graph, donated=self.donated(graph), policy=self.policy))

    def uuid(self) -> str:
        external = self.policy is not None and not isinstance(self.policy, str)
        policy_key = self.policy.uuid() if external else self.policy
        extra = repr((policy_key, self.providers, [s for s, _ in self.stages]))
        if isinstance(self.policy, str):
            import cleanpass

            # cleanpass's own key already covers its sources and the policy
            extra += cleanpass.CloneEliminationPass(policy=self.policy).uuid()
        return compat.hash_files(_source_files(), extra=extra)


class Compiled:
    """A compiled callable that exposes the reports of the passes that built it."""

    def __init__(self, fn: Callable, compiled: Callable, post: PipelinePass, pre: donation.DonationPass) -> None:
        self.fn, self._compiled, self.post, self.pre = fn, compiled, post, pre
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._compiled(*args, **kwargs)

    @property
    def reports(self) -> list[Any]:
        """One clone report per compiled graph (cleanpass.CloneReport or CountReport)."""
        return self.post.reports

    @property
    def lowering_reports(self) -> list[lowering.LoweringReport]:
        return self.post.lowering_reports

    @property
    def donated(self) -> list[tuple[int, ...]]:
        """Donated placeholder positions recorded per compiled graph."""
        return self.pre.state.history


def compile_fn(fn: Callable, policy: str | ExternalCloneElimination | None = None, providers: Sequence[str] | None = None,
               dynamic: bool | None = True, fullgraph: bool = True) -> Compiled:
    """torch.compile ``fn`` with the donation pre-pass and the lowering(+cleanpass) post-pass."""
    state = donation.DonationState()
    pre = donation.DonationPass(state)
    post = PipelinePass(policy, providers, state)
    compiled = torch.compile(compat.fresh_entry(fn), backend="inductor", dynamic=dynamic, fullgraph=fullgraph,
                             options=compat.inductor_options(pre, post))
    return Compiled(fn, compiled, post, pre)
