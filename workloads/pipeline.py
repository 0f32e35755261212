"""One Inductor post-grad pass: lowering, then (optionally) the pass users adopt.

The clone-elimination stage is a real ``cleanpass.CloneEliminationPass``, the object a user
puts in ``post_grad_custom_post_pass``; its ``uuid()`` is part of this pass's key and its
reports are this pass's reports. Donated inputs reach it the way they reach it for a user:
``cleanpass.donated_inputs`` around the call, with the positions the pre-grad donation pass
recorded from the model's ``maybe_inplace`` calls.

A clone-elimination pass from elsewhere (an ``ExternalCloneElimination``, e.g. vLLM's own
pass wrapped by the harness) can take that stage instead; it gets the donated positions as an
argument.

``compile_fn`` wires both passes into ``torch.compile`` through per-compile options, so every
compile carries its own passes and config. The stages are one ordered list that drives both
``__call__`` and ``uuid()``.
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

import cleanpass

from workloads import compat, donation, lowering

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arm:
    """One way to compile a workload's IR graph: lowering, then cleanpass with ``policy``
    (None: lowering only). ``reference``: the reference policy, with its known holes."""

    name: str
    policy: str | None
    reference: bool = False


#: The arms of every A/B comparison, declared once: the harness registers its compiled variants,
#: the clone table its columns and the selfcheck its runs from these; ``Workload.expected_clones``
#: and ``Workload.expected_wrong`` are keyed by their names.
ARMS: tuple[Arm, ...] = (
    Arm("lowered", None),
    Arm("vllm", "vllm", reference=True),
    Arm("cleanpass", "sound"),
)


def arm(name: str) -> Arm:
    """One arm by name."""
    for a in ARMS:
        if a.name == name:
            return a
    raise KeyError(f"unknown arm {name!r}; one of {[a.name for a in ARMS]}")


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
                 state: donation.DonationState | None = None, fold: bool = True) -> None:
        self.policy = policy
        self.fold = fold
        self.providers = tuple(providers) if providers is not None else None
        self.state = state if state is not None else donation.DonationState()
        self.clean = cleanpass.CloneEliminationPass(policy=policy, fold=fold) if isinstance(policy, str) else None
        self.external = policy if policy is not None and not isinstance(policy, str) else None
        # per compiled graph (forward and backward apart); a restarted trace replaces its entry
        self._reports = donation.GraphLog()
        self._lowering_reports = donation.GraphLog()
        self._backward = False
        self.stages: list[tuple[str, Callable[[fx.Graph], None]]] = [("lowering", self._lower)]
        if policy is not None:
            self.stages.append(("cleanpass", self._cleanpass))

    @property
    def reports(self) -> list[Any]:
        """One clone report per compiled graph (forward and backward apart), oldest first."""
        return self._reports.entries

    @property
    def lowering_reports(self) -> list[lowering.LoweringReport]:
        return self._lowering_reports.entries

    def __call__(self, graph: fx.Graph) -> None:
        self._backward = compat.is_backward_graph(graph)
        for name, stage in self.stages:
            t0 = time.perf_counter()
            stage(graph)
            log.debug("%s took %.1f ms", name, 1e3 * (time.perf_counter() - t0))

    def _lower(self, graph: fx.Graph) -> None:
        rep = lowering.lower_ir_ops(graph, self.providers)
        self._lowering_reports.record(rep, self._backward)
        if self.policy is None:
            self._reports.record(CountReport(rep.clones_after, rep.clones_after), self._backward)

    def donated(self, graph: fx.Graph) -> tuple[int, ...]:
        """The donated placeholder positions for this graph (empty if they cannot be mapped)."""
        n = sum(1 for node in graph.nodes if node.op == "placeholder")
        if compat.is_backward_graph(graph):  # gradients in, nothing the caller gave up
            return ()
        if self.state.donated and self.state.num_placeholders != n:
            log.warning("placeholder count changed (%s pre-grad, %s post-grad): donating nothing",
                        self.state.num_placeholders, n)
            return ()
        return self.state.donated

    def _cleanpass(self, graph: fx.Graph) -> None:
        donated = self.donated(graph)
        if self.external is not None:  # a pass from elsewhere takes the positions directly
            self._reports.record(self.external(graph, donated), self._backward)
            return
        assert self.clean is not None
        with cleanpass.donated_inputs(donated):
            self.clean(graph)
        self._reports.record(self.clean.reports[-1], self._backward)

    def uuid(self) -> str:
        policy_key = self.external.uuid() if self.external is not None else self.policy
        extra = repr((policy_key, self.providers, [s for s, _ in self.stages]))
        if self.clean is not None:
            extra += self.clean.uuid()  # the pass's own key: its sources, policy and switch
        return cleanpass.hash_files(_source_files(), extra=extra)


class Compiled:
    """A compiled callable that exposes the reports of the passes that built it."""

    def __init__(self, fn: Callable, compiled: Callable, post: PipelinePass, pre: donation.DonationPass) -> None:
        self.fn, self._compiled, self.post, self.pre = fn, compiled, post, pre
        functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the compiled function; a donation misuse surfaces as ``DonationError`` itself
        (chained to the backend failure Dynamo wraps it in)."""
        try:
            return self._compiled(*args, **kwargs)
        except compat.BackendCompilerFailed as failure:
            cause = compat.backend_cause(failure)
            if isinstance(cause, donation.DonationError):
                raise cause from failure
            raise

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
               dynamic: bool | None = True, fullgraph: bool = True, fold: bool = True) -> Compiled:
    """torch.compile ``fn`` with the donation pre-pass and the lowering(+cleanpass) post-pass;
    ``fold=False`` stops cleanpass from folding kept clones into out-of-place kernels."""
    state = donation.DonationState()
    pre = donation.DonationPass(state)
    post = PipelinePass(policy, providers, state, fold)
    compiled = torch.compile(compat.fresh_entry(fn), backend="inductor", dynamic=dynamic, fullgraph=fullgraph,
                             options=compat.inductor_options(pre, post))
    return Compiled(fn, compiled, post, pre)


def copy_graph(graph: fx.Graph) -> fx.Graph:
    """A node-for-node copy of a captured post-grad graph: same names, each node's meta a shallow
    copy (the same fake tensors; the pass replaces meta values, never mutates them)."""
    new = fx.Graph()
    new.output(new.graph_copy(graph, {}))
    return new
