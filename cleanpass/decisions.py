"""What the pass reports: one decision per clone, with a stable reason string."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.fx import Node

from ._compat import scaled_expr, size_hint

# Reason strings are a contract (logs, reports and dashboards key on them): never rename one.
REMOVED = "removed"
# a kept clone folded into its kernel's out-of-place form (cleanpass.fold, conditions F1-F5)
FOLDED = "folded"
# 1. the old value of the source (or an alias) is read after the clone is first written
SOURCE_READ_AFTER_WRITE = "source-read-after-write"
# 2. the source (or an alias) is written while the clone's value is still needed
SOURCE_WRITTEN_WHILE_LIVE = "source-written-while-live"
# 3. the clone is written and the source is (a view of) an input the caller did not donate
READ_ONLY_INPUT = "read-only-input"
# 4. the clone changes layout (size, stride, storage offset or dtype), or layout is unknown
LAYOUT_DIFFERS = "layout-differs"
LAYOUT_UNKNOWN = "layout-unknown"
# 4 (strided views, cleanpass.strided): the layouts differ only because the source is a view,
# and a reader of the clone would see the difference:
# a view or reshape of the clone that is no view on the source's strides
STRIDED_VIEW_INVALID = "strided-view-invalid"
# an op that may need the clone's dense layout (unknown, or a kernel that did not declare it
# takes any strides and offset for that argument)
STRIDED_USER = "strided-user-needs-layout"
# the caller would see the source's strides in an output
STRIDED_OUTPUT = "strided-output"
# the new layout could not be re-propagated through the readers' fake tensors
STRIDED_UNVERIFIED = "strided-unverified"
# 5. removing the clone would make an output alias an input, or two outputs alias each other
OUTPUT_WOULD_ALIAS_INPUT = "output-would-alias-input"
OUTPUTS_WOULD_ALIAS = "outputs-would-alias"
# the graph is not what the pass understands: keep, never guess
UNSUPPORTED_CLONE = "unsupported-clone"
ANALYSIS_ERROR = "analysis-error"
# the "vllm" reference policy's own reasons
VLLM_SOURCE_USED_AFTER_WRITE = "vllm:source-used-after-write"
VLLM_NON_DONATED_INPUT = "vllm:non-donated-input"
VLLM_LAYOUT_DIFFERS = "vllm:layout-differs"
# an unwritten, returned clone whose removal would make an output share storage with a graph
# input or another output (vLLM 0.33); without fake-tensor storages it always assumes so
VLLM_WOULD_ALIAS_GRAPH_IO = "vllm:would-alias-graph-io"
VLLM_STORAGE_UNKNOWN = "vllm:storage-unknown"

KEEP_REASONS = (
    SOURCE_READ_AFTER_WRITE,
    SOURCE_WRITTEN_WHILE_LIVE,
    READ_ONLY_INPUT,
    LAYOUT_DIFFERS,
    LAYOUT_UNKNOWN,
    STRIDED_VIEW_INVALID,
    STRIDED_USER,
    STRIDED_OUTPUT,
    STRIDED_UNVERIFIED,
    OUTPUT_WOULD_ALIAS_INPUT,
    OUTPUTS_WOULD_ALIAS,
    UNSUPPORTED_CLONE,
    ANALYSIS_ERROR,
)
VLLM_KEEP_REASONS = (
    VLLM_LAYOUT_DIFFERS,
    VLLM_SOURCE_USED_AFTER_WRITE,
    VLLM_NON_DONATED_INPUT,
    VLLM_WOULD_ALIAS_GRAPH_IO,
    VLLM_STORAGE_UNKNOWN,
)


# Where a clone came from: a pass that creates clones (a lowering) tags them with
# `node.meta[ORIGIN_KEY] = "<its name>"`; untagged clones are the model's own.
ORIGIN_KEY = "cleanpass_origin"
MODEL = "model"


@dataclass(frozen=True)
class Decision:
    """The verdict on one `clone` node: `reason` is REMOVED, FOLDED or one of (VLLM_)KEEP_REASONS.

    `bytes` is what the clone copies (what removing or folding it saves in each direction); for a symbolic size it is the value at the size the graph
    was traced with, and `bytes_formula` keeps the expression (e.g. `"2048*s0"`). `origin` says
    who made the clone (`"model"`, or the tag of the pass that created it).
    """

    clone: str
    source: str
    reason: str
    bytes: int | None = None
    bytes_formula: str | None = None
    origin: str = MODEL

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict, like `dataclasses.asdict` without its deep copy (every field
        is a str, an int or None): a report of thousands of decisions is built per graph."""
        return dict(self.__dict__)


def clone_bytes(clone: Node) -> tuple[int | None, str | None]:
    """(bytes the clone copies, formula when its size is symbolic)."""
    fake = clone.meta.get("val")
    if not isinstance(fake, torch.Tensor):
        return None, None
    numel, itemsize = fake.numel(), fake.element_size()
    if isinstance(numel, int):
        return numel * itemsize, None
    hint = size_hint(numel)
    return (None if hint is None else hint * itemsize), _formula(numel, itemsize)


def _formula(numel: Any, itemsize: int) -> str:
    """`str(numel * itemsize)` for a symbolic element count. Printing costs about 0.1 ms
    (sympy) and every clone of a dynamic-shape graph asks, for a handful of distinct sizes: the
    text is cached per product expression (it depends on nothing else)."""
    product = scaled_expr(numel, itemsize)
    return str(numel * itemsize) if product is None else _printed(product)


@functools.lru_cache(maxsize=1024)
def _printed(expr: Any) -> str:
    return str(expr)


_new_object = object.__new__


def decide(clone: Node, source: str, reason: str) -> Decision:
    """The decision record for `clone`, with its size and origin read from the node.

    Built without the frozen dataclass's `__init__` (one `object.__setattr__` per field: about
    1 us, paid once per clone of every graph); the fields are the same (tests/cleanpass)."""
    size, formula = clone_bytes(clone)
    origin = clone.meta.get(ORIGIN_KEY, MODEL)
    decision = _new_object(Decision)
    fields = decision.__dict__  # item by item: no keyword dict to build first
    fields["clone"], fields["source"], fields["reason"] = clone.name, source, reason
    fields["bytes"], fields["bytes_formula"] = size, formula
    fields["origin"] = origin if type(origin) is str else str(origin)
    return decision


@dataclass
class CloneReport:
    """Every decision of one run of the pass over one graph, plus how long it took.

    `removed`: clones elimination deleted; `folded`: clones it had to keep that folding turned
    into out-of-place kernels (no copy left); `kept`: clones still in the graph.
    `guards_added`: shape guards the run left in the graph's shape environment. Always empty
    by design (every size question is asked without guarding): one would specialise a
    dynamic-shape program on it (a recompile under torch.compile; under a caller that drops
    guards, code that is only right where the guard holds), so a run that adds one says so.
    """

    policy: str
    removed: list[Decision] = field(default_factory=list)
    kept: list[Decision] = field(default_factory=list)
    folded: list[Decision] = field(default_factory=list)
    seconds: float = 0.0
    guards_added: tuple[str, ...] = ()

    @property
    def clones_before(self) -> int:
        return len(self.removed) + len(self.kept) + len(self.folded)

    @property
    def clones_after(self) -> int:
        return len(self.kept)

    def add(self, decision: Decision) -> None:
        reason = decision.reason
        if reason == REMOVED:
            self.removed.append(decision)
        elif reason == FOLDED:
            self.folded.append(decision)
        else:
            self.kept.append(decision)

    def fold(self, clone: str) -> None:
        """Move the kept decision on `clone` to `folded`."""
        for index, decision in enumerate(self.kept):
            if decision.clone == clone:
                del self.kept[index]
                self.folded.append(replace(decision, reason=FOLDED))
                return
        raise KeyError(f"no kept decision on {clone}")

    def by_origin(self) -> dict[str, tuple[int, int]]:
        """{origin: (clones before, clones kept)}: the lowering's clones apart from the model's."""
        counts: dict[str, list[int]] = {}
        for decision in self.removed + self.folded + self.kept:
            counts.setdefault(decision.origin, [0, 0])[0] += 1
        for decision in self.kept:
            counts[decision.origin][1] += 1
        return {origin: (n, kept) for origin, (n, kept) in sorted(counts.items())}

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for decision in self.kept:
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
        kept = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
        guards = f"; added shape guards: {', '.join(self.guards_added)}" if self.guards_added else ""
        return (f"{self.policy}: removed {len(self.removed)}, folded {len(self.folded)} of "
                f"{self.clones_before} clones in {self.seconds * 1e3:.1f} ms (kept: {kept}){guards}")
