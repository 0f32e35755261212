"""The entry point: decide every clone in graph order, then apply all edits at once."""
from __future__ import annotations

import contextlib
import gc
import logging
import time
from typing import Iterator

from torch.fx import Graph, GraphModule, Node

from . import _compat, decisions, eager_vals, refake
from .dead import erase_dead_code
from .facts import GraphFacts
from .fold import fold_clones
from .reference import run_reference
from .sound import decide_sound
from .strided import relayout

log = logging.getLogger(__name__)
POLICIES = ("sound", "vllm")


def _source_name(clone: Node) -> str:
    source = clone.args[0] if clone.args else None
    return source.name if isinstance(source, Node) else repr(source)


def _erase_dead_code(graph: Graph, report: decisions.CloneReport) -> list[Node]:
    """Step 0 (`cleanpass.dead`): dead clones, and dead pure computations whose reads would keep
    clones alive, go first. Returns the clones left, in graph order."""
    def removed(clone: Node) -> None:
        report.add(decisions.decide(clone, _source_name(clone), decisions.REMOVED))

    return erase_dead_code(graph, removed)


def _run_sound(graph: Graph, donated: tuple[int, ...],
               report: decisions.CloneReport) -> tuple[GraphFacts, list[Node]] | None:
    """Decide and remove; returns the facts (current with the removals) and the clones kept,
    None if the graph is unreadable."""
    clones = _erase_dead_code(graph, report)
    try:
        facts = GraphFacts(graph, donated)
        if clones and not facts.aliases.recorded:  # a real-tensor trace (`cleanpass.refake`)
            if not refake.refresh(graph):
                raise ValueError("aliasing not recorded by the trace and not re-derivable")
            facts = GraphFacts(graph, donated)
    except Exception:  # a graph the analysis cannot read: keep everything, say why
        log.warning("cleanpass: analysis failed; keeping all %d clones", len(clones), exc_info=True)
        for clone in clones:
            report.add(decisions.decide(clone, _source_name(clone), decisions.ANALYSIS_ERROR))
        return None
    for clone in clones:
        args = clone.args  # read once: fx serves it through a Python property
        source = args[0] if args else None
        if not isinstance(source, Node) or len(args) + len(clone.kwargs) > 2:
            reason = decisions.UNSUPPORTED_CLONE
        else:
            source = facts.resolve(source)
            try:
                reason = decide_sound(clone, source, facts)
            except Exception:
                log.warning("cleanpass: could not decide %s; keeping it", clone.name, exc_info=True)
                reason = decisions.ANALYSIS_ERROR
        if reason == decisions.REMOVED:
            facts.drop_clone(clone, source)
        if isinstance(source, Node):  # readers of a strided source: their new fake values
            relayout(clone, source, facts, removed=reason == decisions.REMOVED)
        report.add(decisions.decide(clone, _source_name(clone) if reason != decisions.REMOVED
                                    else source.name, reason))
    kept = []
    for clone in clones:  # apply the edits in graph order; chains resolve to the root
        if clone in facts.replaced:
            clone.replace_all_uses_with(facts.resolve(clone))
            graph.erase_node(clone)
        else:
            kept.append(clone)
    return facts, kept


def _eliminate_and_fold(graph: Graph, donated: tuple[int, ...], report: decisions.CloneReport,
                        fold: bool) -> None:
    """The sound policy's two steps. A function of its own so that the facts die (by reference
    count) before the collector is re-enabled: alive, its first collection would scan them all."""
    outcome = _run_sound(graph, donated, report)
    if fold and outcome is not None and outcome[1]:
        fold_clones(graph, *outcome, report)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The analysis allocates many small acyclic objects; on a 100k-node graph the cyclic
    collector's full scans of the heap (fake tensors included) cost more than the analysis."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def eliminate_clones_in_graph(graph: Graph, donated: tuple[int, ...] = (),
                              policy: str = "sound", fold: bool = True) -> decisions.CloneReport:
    """Remove the unneeded `aten.clone.default` nodes of a bare `fx.Graph` (no recompile).

    See `eliminate_clones`.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
    report = decisions.CloneReport(policy=policy)
    started = time.perf_counter()
    donated = tuple(sorted(set(int(i) for i in donated)))
    shape_env = _compat.shape_env_of(graph)
    guards_before = _compat.guard_count(shape_env)
    records = eager_vals.snapshot(graph)
    with _gc_paused(), _compat.fast_tensor_metadata():
        if policy == "vllm":
            run_reference(graph, donated, report)
        else:
            _eliminate_and_fold(graph, donated, report, fold)
        eager_vals.refresh(graph, records)  # Inductor's stride contract, true for the new arguments
    report.seconds = time.perf_counter() - started
    report.guards_added = _compat.guard_texts(shape_env, guards_before)
    if report.guards_added:
        log.warning("cleanpass specialised the graph on %s: the compiled program recompiles where "
                    "they fail (please report it)", ", ".join(report.guards_added))
    if log.isEnabledFor(logging.INFO):  # the summary walks every decision: only when logged
        log.info("cleanpass %s", report.summary())
    if log.isEnabledFor(logging.DEBUG):
        for decision in report.kept:
            log.debug("cleanpass kept %s = clone(%s): %s", decision.clone, decision.source, decision.reason)
    return report


def eliminate_clones(gm: GraphModule, donated: tuple[int, ...] = (),
                     policy: str = "sound", fold: bool = True) -> decisions.CloneReport:
    """Delete the clones of `gm` that provably are not needed; edits `gm` and recompiles it.

    `donated` are the 0-based positions (graph order) of placeholders whose storage the caller
    gives up. `policy` is "sound" (conditions 1-5 in `cleanpass.sound`) or "vllm" (the
    reference behaviour, holes included, for side-by-side comparison). With `fold` (sound
    policy only), each clone that must stay but only hands a kernel with a registered
    out-of-place form its private buffer is folded into that form (`cleanpass.fold`).

    Before / after, with x donated and nothing reading x later::

        c = clone(x); fused_add_rms_norm_(c, r, w); return c    ->   ...(x, r, w); return x

    Kept, with reason "source-read-after-write" (a view of x is read after the write)::

        q = x[:, :64]; c = clone(x); rms_norm_(c, w); y = q + 1; return c, y
    """
    report = eliminate_clones_in_graph(gm.graph, donated, policy, fold)
    gm.recompile()
    return report
