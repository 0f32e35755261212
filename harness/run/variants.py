"""The variants every case is run as, as a registry of builders.

A builder does all setup (own input copies, compile, first call) and returns a ``Prepared``
whose ``call`` is a zero-argument callable: the timer sees only that. Availability is data:
``enabled(ctx)`` returns a skip reason or None, so a missing backend becomes a skipped row,
never an ImportError. Tests (or a user) add variants with ``register_variant`` /
``extra_variants`` without touching this file.

- ``eager``: the workload's plain-torch ``native_fn`` run eagerly (what you get without a compiler).
- ``native``: ``native_fn`` under torch.compile; Inductor fuses the decomposed ops itself.
- ``lowered``: ``fn`` (IR ops) compiled with the lowering pass only; protective clones stay.
- ``vllm``: lowered + clone elimination with the reference ("vllm") policy, our model of vLLM's pass.
- ``vllm_real``: lowered + vLLM's own ``UnsafeCloneEliminationPass`` (skipped when vllm is not
  importable; ``make peer`` builds an environment where it is).
- ``cleanpass``: lowered + clone elimination with the sound policy (removal, then folding).
- ``cleanpass_nofold``: the same pass with folding off (``fold=False``): elimination alone, so
  a run shows what removing clones and folding the kept ones into out-of-place kernels each
  contribute (``harness.store.results.unfolded_variant``).
- ``ideal``: ``ideal_fn``, hand-written direct in-place kernel calls, run eagerly.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence

import torch

from cleanpass.verify import PoisonedAllocations, poison
from harness.run import compat, exact_bytes, vllm_real
from harness.run.compile import CompileCache, CompiledEntry, Counts, apply, first_call
from harness.store.results import VariantInfo, unfolded_name
from workloads import donation, pipeline
from workloads.pipeline import ARMS

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a builder gets: the case, its built workload and the run's compile cache."""

    workload: str
    built: Any                      # workloads.catalog.Built
    pristine: tuple                 # untouched copies of the inputs; never passed to a variant
    num_tokens: int
    hidden: int
    group_key: Hashable             # the case minus its token count
    device: str
    cache: CompileCache
    donations_checked: bool = False

    def fresh_inputs(self) -> tuple:
        """A private copy of the inputs for one variant (CUDA graphs need stable addresses)."""
        return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in self.pristine)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def check_donations(self) -> None:
        """Raise unless ``built.donated`` is what ``built.fn``'s ``maybe_inplace`` calls donate
        (once per case): the rows' "non-donated inputs untouched" check trusts that list."""
        if not self.donations_checked:
            donation.check_declared(self.workload, self.built.fn, self.fresh_inputs(), self.built.donated)
            self.donations_checked = True


@dataclass
class Prepared:
    """A ready-to-time variant: ``call()`` runs it once on ``inputs``."""

    call: Callable[[], Any]
    inputs: tuple
    donated: tuple[int, ...] = ()
    counts: Counts = field(default_factory=Counts)
    compile_s: float = float("nan")
    first_call_compiled: bool = False  # whether that call compiled (its seconds include it)
    #: a context in which every fresh allocation the variant's code makes comes back poisoned
    #: (NaN), so a kernel leaving part of its output unwritten fails validation; never timed
    poisoned: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


Builder = Callable[[Context], Prepared]
Enabled = Callable[[Context], "str | None"]


@dataclass(frozen=True)
class VariantSpec:
    """A registered variant: how to build it, when it is available, and what it is (``info``,
    the declaration the runner, the stored run and every report read)."""

    info: VariantInfo
    builder: Builder
    enabled: Enabled = field(default=lambda ctx: None)

    @property
    def name(self) -> str:
        return self.info.name


_REGISTRY: dict[str, VariantSpec] = {}


def register_variant(name: str, builder: Builder, enabled: Enabled | None = None,
                     replace: bool = False, *, policy: str | None = None, partner: str | None = None,
                     baseline: bool = False, reference: bool = False, bound: bool = False) -> VariantSpec:
    """Add a variant (kept in registration order, which is also the table order); the keyword
    arguments are its declaration (``harness.store.results.VariantInfo``)."""
    if name in _REGISTRY and not replace:
        raise KeyError(f"variant {name!r} already registered")
    if partner is not None and partner not in _REGISTRY and partner != name:
        raise KeyError(f"variant {name!r}: partner {partner!r} is not registered")
    if baseline and any(s.info.baseline for n, s in _REGISTRY.items() if n != name):
        raise ValueError(f"variant {name!r}: a baseline variant is already registered")
    info = VariantInfo(name, policy=policy, partner=partner, baseline=baseline, reference=reference,
                       bound=bound)
    spec = VariantSpec(info, builder, enabled or (lambda ctx: None))
    _REGISTRY[name] = spec
    return spec


def unregister_variant(name: str) -> None:
    _REGISTRY.pop(name, None)


@contextlib.contextmanager
def extra_variants(specs: dict[str, Builder]) -> Iterator[None]:
    """Register variants for the duration of a block (tests inject broken ones this way)."""
    added = []
    try:
        for name, builder in specs.items():
            register_variant(name, builder)
            added.append(name)
        yield
    finally:
        for name in added:
            unregister_variant(name)


def registered() -> dict[str, VariantSpec]:
    return dict(_REGISTRY)


def variant_names() -> list[str]:
    return list(_REGISTRY)


def declarations(names: Sequence[str] | None = None) -> list[VariantInfo]:
    """The declarations of ``names`` (default: all), in registration order, for ``env.json``."""
    wanted = set(names) if names is not None else None
    return [s.info for n, s in _REGISTRY.items() if wanted is None or n in wanted]


# ---- availability ----------------------------------------------------------------------

def _needs_vllm(ctx: Context) -> str | None:
    return vllm_real.unavailable()


def _needs_ideal(ctx: Context) -> str | None:
    return None if getattr(ctx.built, "ideal_fn", None) is not None else "workload has no ideal_fn"


# ---- builders --------------------------------------------------------------------------

def _eager_builder(attr: str, mutates: Callable[[Any], tuple[int, ...]]) -> Builder:
    def build(ctx: Context) -> Prepared:
        fn = getattr(ctx.built, attr)
        inputs = ctx.fresh_inputs()

        t0 = time.perf_counter()
        with exact_bytes.EagerBytes() as counted:
            fn(*inputs)
        ctx.sync()
        return Prepared(call=lambda: fn(*inputs), inputs=inputs,
                        donated=tuple(mutates(ctx.built)),
                        counts=Counts(bytes_exact=counted.total, bytes_at_tokens=ctx.num_tokens),
                        compile_s=time.perf_counter() - t0, poisoned=PoisonedAllocations)
    return build


def compile_native() -> Callable:
    """Plain torch.compile (Inductor) of ``apply``; only the token dim dynamic (marked per call)."""
    return torch.compile(apply, backend="inductor", dynamic=False, fullgraph=True)


def compile_pipeline(policy: Any, fold: bool = True) -> Callable:
    """``workloads.pipeline.compile_fn`` of ``apply``: lowering (+ clone elimination: a cleanpass
    policy name, or a pass object such as ``vllm_real.RealCloneElimination``; ``fold=False``:
    cleanpass keeps the clones it cannot remove as copies)."""
    return pipeline.compile_fn(apply, policy=policy, dynamic=False, fold=fold)


def compiled_builder(variant: str, make: Callable[[], Callable], source: Callable[[Context], Callable],
                     donates: bool) -> Builder:
    """A builder that compiles once per (variant, group) and reuses it for every token count.

    ``make()`` compiles ``harness.run.compile.apply``; ``source(ctx)`` is the workload callable it
    is applied to (passed as an argument, so weights of each shape's instance are inputs).
    """
    def build(ctx: Context) -> Prepared:
        if donates:
            ctx.check_donations()
        entry: CompiledEntry = ctx.cache.get_or_create((variant, ctx.group_key), make)
        inputs = ctx.fresh_inputs()
        fn = source(ctx)
        compiles_before = entry.compiles
        _, seconds = first_call(entry, fn, inputs, ctx.num_tokens, ctx.sync,
                                  lambda ins: ctx.built.mark_token_dims(ins, ctx.hidden))
        compiled = entry.compiled
        return Prepared(call=lambda: compiled(fn, *inputs), inputs=inputs,
                        donated=tuple(ctx.built.donated) if donates else (),
                        counts=entry.counts, compile_s=seconds,
                        first_call_compiled=entry.compiles > compiles_before,
                        poisoned=lambda: compat.poisoned_wrapper_allocations(entry.modules, poison))
    return build


def _ir_fn(ctx: Context) -> Callable:
    return ctx.built.fn


def _native_fn(ctx: Context) -> Callable:
    return ctx.built.native_fn


def _register_defaults() -> None:
    none = (lambda b: ())
    ideal_writes = (lambda b: tuple(getattr(b, "ideal_mutates", None) or b.donated))
    register_variant("eager", _eager_builder("native_fn", none))
    register_variant("native", compiled_builder("native", compile_native, _native_fn, False))
    base = next(a.name for a in ARMS if a.policy is None)
    for a in ARMS:  # the pipeline's arms: lowering only (the baseline), then each policy
        register_variant(a.name, compiled_builder(a.name, functools.partial(compile_pipeline, a.policy), _ir_fn, True),
                         policy=a.policy, partner=None if a.policy is None else base,
                         baseline=a.policy is None, reference=a.reference)
        if a.reference:  # vLLM's own pass next to our model of it (a skipped row without vllm)
            register_variant("vllm_real", compiled_builder(
                "vllm_real", lambda: compile_pipeline(vllm_real.RealCloneElimination()), _ir_fn, True),
                enabled=_needs_vllm, policy="vllm-real", partner=base, reference=True)
    cand = next(a for a in ARMS if a.policy is not None and not a.reference)
    unfolded = unfolded_name(cand.name)  # registered after the pass, so it never plays the pass's role
    register_variant(unfolded, compiled_builder(unfolded, functools.partial(compile_pipeline, cand.policy, False),
                                                _ir_fn, True), policy=cand.policy, partner=base)
    register_variant("ideal", _eager_builder("ideal_fn", ideal_writes), enabled=_needs_ideal, bound=True)


_register_defaults()
