"""Compile once per (workload, variant, dtype, static shape part), reuse across token counts.

A compile group is everything of a case except the token count. The first call of a group
(the largest token count, so the counted bytes describe the bandwidth-relevant size and the
token dim is not specialised to 1) marks each activation's token dim dynamic and compiles;
later token counts reuse that graph. We read the generated code (kernels, copies and the view
check of ``codecheck``, compiled with Inductor's provenance tracking on), Inductor's byte count,
our exact one (``harness.run.exact_bytes``) and the pass's decisions on the calls that compiled;
a call that recompiled (e.g. tokens=1, which Dynamo specialises) refreshes them.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any, Callable, Hashable, Iterator, Sequence

import torch

from harness.run import codecheck
from harness.run import compat
from harness.run import exact_bytes
from harness.run import measure
from workloads.ir.registry import KERNEL_NAMESPACE

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """What one compile taught us: the deterministic columns of a row (``results.Row`` has each
    field but ``view_errors`` and ``shape_guards``), shared by the compile entry, the prepared
    variant and the row."""

    kernels: int | None = None
    copies: int | None = None  # copy launches in the generated code (None: no code, eager)
    #: mutated view arguments that reach a checked kernel as a temporary (``codecheck``)
    view_errors: tuple[str, ...] = ()
    #: shape guards the sound pass added (``CloneReport.guards_added``): it specialised the graph
    shape_guards: tuple[str, ...] = ()
    bytes_accessed: int | None = None
    bytes_exact: int | None = None
    bytes_decided: int | None = None
    bytes_at_tokens: int | None = None
    clones_before: int | None = None
    clones_after: int | None = None

    def row_columns(self) -> dict[str, Any]:
        """The fields that are result columns."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("view_errors", "shape_guards")}


@dataclass
class CompiledEntry:
    """One compiled callable and what we learnt when it compiled."""

    compiled: Callable[..., Any]
    counts: Counts = field(default_factory=Counts)
    #: the Python modules Inductor loaded for it (generated wrappers), for poisoned validation
    modules: list[ModuleType] = field(default_factory=list)
    compiles: int = 0


@dataclass
class CompileCache:
    """Compiled callables keyed by (variant, group key); lives for one run."""

    entries: dict[Hashable, CompiledEntry] = field(default_factory=dict)
    #: (variant, group key) -> Inductor provenance (kernel -> FX nodes), filled in attribution runs
    provenance: dict[Hashable, dict[str, list[str]]] = field(default_factory=dict)

    def get_or_create(self, key: Hashable, make: Callable[[], Callable[..., Any]]) -> CompiledEntry:
        if key not in self.entries:
            self.entries[key] = CompiledEntry(make())
        return self.entries[key]


def apply(fn: Callable[..., Any], *args: Any) -> Any:
    """What we compile: ``fn(*args)`` with ``fn`` (the workload's module) as an argument.

    Workload modules are rebuilt per shape (own weights), so compiling one instance would tie
    the graph to its weights. Passing the module in lets Dynamo lift its parameters as inputs
    and reuse one compile for every instance of the same structure.
    """
    return fn(*args)


def _shape_guards(reports: Sequence[Any]) -> tuple[str, ...]:
    """Guards the sound policy added. The reference policy's are its own (it models a pass that
    compares symbolic strides as it likes); the pass logs those as warnings."""
    return tuple(guard for r in reports if getattr(r, "policy", None) == "sound"
                 for guard in getattr(r, "guards_added", ()))


def _clone_counts(reports: Sequence[Any]) -> tuple[int | None, int | None]:
    if not reports:
        return None, None
    before = sum(int(getattr(r, "clones_before", 0) or 0) for r in reports)
    after = sum(int(getattr(r, "clones_after", 0) or 0) for r in reports)
    return before, after


def ir_kernel_mutated_args(qualname: str) -> tuple[tuple[int, str], ...] | None:
    """(position, name) of each argument one of our IR kernels (``cleanpass_kernels::*``)
    mutates, from its schema's ``Tensor(a!)``; None for any other op (the view check skips it)."""
    ns, _, rest = qualname.partition("::")
    if ns != KERNEL_NAMESPACE:
        return None
    op, _, overload = rest.partition(".")
    try:
        schema = getattr(getattr(getattr(torch.ops, ns), op), overload or "default")._schema
    except (AttributeError, RuntimeError):
        return None
    return tuple((i, a.name) for i, a in enumerate(schema.arguments)
                 if a.alias_info is not None and a.alias_info.is_write)


@dataclass
class GeneratedCode:
    """Inductor's wrapper code of every graph compiled inside ``capture_code``, each with its
    provenance map (``<kernel>:<handle>`` -> post-grad FX nodes; empty without tracking)."""

    codes: list[str] = field(default_factory=list)
    provenance: list[dict[str, list[str]]] = field(default_factory=list)

    def copies(self) -> int | None:
        """Copy launches over all graphs (``codecheck.count_copies``); None when none compiled."""
        return codecheck.count_copies(self.codes, self.provenance)

    def view_reports(self) -> list[codecheck.ViewReport]:
        """The view check of our IR kernels, one report per graph."""
        return [codecheck.check_views(code, prov, ir_kernel_mutated_args)
                for code, prov in zip(self.codes, self.provenance)]

    def view_errors(self) -> tuple[str, ...]:
        """Every violation of the view check, as a readable line (warns on unverified ones)."""
        errors: list[str] = []
        for report in self.view_reports():
            errors += [str(v) for v in report.violations]
            if report.unverified:
                log.warning("view check could not verify %s (no provenance)", report.unverified)
        return tuple(errors)


@contextlib.contextmanager
def capture_code() -> Iterator[GeneratedCode]:
    """Capture the wrapper code and provenance of the graphs compiled inside the block."""
    found = GeneratedCode()

    def on_compile(provenance: dict[str, list[str]]) -> None:
        # called once per compile, after its wrapper(s) were written
        found.provenance.extend(provenance for _ in range(len(found.codes) - len(found.provenance)))

    with compat.capture_generated_code(found.codes), compat.record_provenance(on_compile):
        yield found
    found.provenance.extend({} for _ in range(len(found.codes) - len(found.provenance)))


def first_call(entry: CompiledEntry, fn: Callable[..., Any], inputs: Sequence[Any], num_tokens: int,
               sync: Callable[[], None], mark_token_dims: Callable[[Sequence[Any]], Any]) -> tuple[Any, float]:
    """Call the compiled fn once (compiling if needed); refresh counts if it compiled.

    Returns (output, seconds). The seconds include compilation when it happened.
    """
    if entry.compiles == 0:
        mark_token_dims(inputs)
    reports = getattr(entry.compiled, "reports", None)
    n_reports = len(reports) if reports is not None else 0
    t0 = time.perf_counter()
    with capture_code() as generated, compat.count_inductor_bytes() as counted, \
            compat.capture_compiled_modules(entry.modules):
        out = entry.compiled(fn, *inputs)
        sync()
    seconds = time.perf_counter() - t0
    if generated.codes:
        entry.compiles += 1
        new_reports = list(reports)[n_reports:] if reports is not None else []
        clones_before, clones_after = _clone_counts(new_reports)
        entry.counts = Counts(
            kernels=measure.count_kernels_in(generated.codes), copies=generated.copies(),
            view_errors=generated.view_errors(), shape_guards=_shape_guards(new_reports),
            bytes_accessed=counted.value or None,
            bytes_exact=exact_bytes.exact_bytes(counted.graphs),
            bytes_decided=exact_bytes.decided_bytes(new_reports) if reports is not None else None,
            bytes_at_tokens=num_tokens, clones_before=clones_before, clones_after=clones_after)
        log.debug("compiled (#%d) at tokens=%d in %.2fs: %s", entry.compiles, num_tokens, seconds, entry.counts)
    return out, seconds
