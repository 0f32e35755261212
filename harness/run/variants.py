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
- ``cleanpass``: lowered + clone elimination with the sound policy.
- ``ideal``: ``ideal_fn``, hand-written direct in-place kernel calls, run eagerly.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

import torch

from harness.run import vllm_real
from harness.run.compile import CompileCache, CompiledEntry, apply, first_call

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

    def fresh_inputs(self) -> tuple:
        """A private copy of the inputs for one variant (CUDA graphs need stable addresses)."""
        return tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in self.pristine)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


@dataclass
class Prepared:
    """A ready-to-time variant: ``call()`` runs it once on ``inputs``."""

    call: Callable[[], Any]
    inputs: tuple
    donated: tuple[int, ...] = ()
    clones_before: int | None = None
    clones_after: int | None = None
    kernels: int | None = None
    bytes_accessed: int | None = None
    bytes_at_tokens: int | None = None
    compile_s: float = float("nan")
    first_output: Any = None        # output of the first call, made on pristine inputs
    first_call_compiled: bool = False  # whether that call compiled (its seconds include it)


Builder = Callable[[Context], Prepared]
Enabled = Callable[[Context], "str | None"]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    builder: Builder
    enabled: Enabled = field(default=lambda ctx: None)


_REGISTRY: dict[str, VariantSpec] = {}


def register_variant(name: str, builder: Builder, enabled: Enabled | None = None,
                     replace: bool = False) -> VariantSpec:
    """Add a variant (kept in registration order, which is also the table order)."""
    if name in _REGISTRY and not replace:
        raise KeyError(f"variant {name!r} already registered")
    spec = VariantSpec(name, builder, enabled or (lambda ctx: None))
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


# ---- availability ----------------------------------------------------------------------

def _module_missing(name: str, attr: str | None = None) -> str | None:
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return f"{name} not importable ({type(e).__name__}: {e})"
    if attr is not None and not hasattr(mod, attr):
        return f"{name}.{attr} missing"
    return None


def _needs_pipeline(ctx: Context) -> str | None:
    return _module_missing("workloads.pipeline", "compile_fn")


def _needs_cleanpass(ctx: Context) -> str | None:
    return _needs_pipeline(ctx) or _module_missing("cleanpass", "eliminate_clones_in_graph")


def _needs_vllm(ctx: Context) -> str | None:
    return _needs_pipeline(ctx) or vllm_real.unavailable()


def _needs_ideal(ctx: Context) -> str | None:
    return None if getattr(ctx.built, "ideal_fn", None) is not None else "workload has no ideal_fn"


# ---- builders --------------------------------------------------------------------------

def _eager_builder(attr: str, mutates: Callable[[Any], tuple[int, ...]]) -> Builder:
    def build(ctx: Context) -> Prepared:
        fn = getattr(ctx.built, attr)
        inputs = ctx.fresh_inputs()

        t0 = time.perf_counter()
        out = fn(*inputs)
        ctx.sync()
        return Prepared(call=lambda: fn(*inputs), inputs=inputs,
                        donated=tuple(mutates(ctx.built)),
                        compile_s=time.perf_counter() - t0, first_output=out)
    return build


def compile_native() -> Callable:
    """Plain torch.compile (Inductor) of ``apply``; only the token dim dynamic (marked per call)."""
    return torch.compile(apply, backend="inductor", dynamic=False, fullgraph=True)


def compile_pipeline(policy: Any) -> Callable:
    """``workloads.pipeline.compile_fn`` of ``apply``: lowering (+ clone elimination: a cleanpass
    policy name, or a pass object such as ``vllm_real.RealCloneElimination``)."""
    from workloads import pipeline

    return pipeline.compile_fn(apply, policy=policy, dynamic=False)


def compiled_builder(variant: str, make: Callable[[], Callable], source: Callable[[Context], Callable],
                     donates: bool) -> Builder:
    """A builder that compiles once per (variant, group) and reuses it for every token count.

    ``make()`` compiles ``harness.run.compile.apply``; ``source(ctx)`` is the workload callable it
    is applied to (passed as an argument, so weights of each shape's instance are inputs).
    """
    def build(ctx: Context) -> Prepared:
        entry: CompiledEntry = ctx.cache.get_or_create((variant, ctx.group_key), make)
        inputs = ctx.fresh_inputs()
        fn = source(ctx)
        compiles_before = entry.compiles
        out, seconds = first_call(entry, fn, inputs, ctx.num_tokens, getattr(ctx.built, "dynamic_dim", 0), ctx.sync,
                                  ctx.hidden)
        compiled = entry.compiled
        return Prepared(call=lambda: compiled(fn, *inputs), inputs=inputs,
                        donated=tuple(ctx.built.donated) if donates else (),
                        clones_before=entry.clones_before, clones_after=entry.clones_after,
                        kernels=entry.kernels, bytes_accessed=entry.bytes_accessed,
                        bytes_at_tokens=entry.bytes_at_tokens, compile_s=seconds, first_output=out,
                        first_call_compiled=entry.compiles > compiles_before)
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
    register_variant("lowered", compiled_builder("lowered", lambda: compile_pipeline(None), _ir_fn, True),
                     enabled=_needs_pipeline)
    register_variant("vllm", compiled_builder("vllm", lambda: compile_pipeline("vllm"), _ir_fn, True),
                     enabled=_needs_cleanpass)
    register_variant("vllm_real", compiled_builder("vllm_real",
                                                   lambda: compile_pipeline(vllm_real.RealCloneElimination()),
                                                   _ir_fn, True),
                     enabled=_needs_vllm)
    register_variant("cleanpass", compiled_builder("cleanpass", lambda: compile_pipeline("sound"), _ir_fn, True),
                     enabled=_needs_cleanpass)
    register_variant("ideal", _eager_builder("ideal_fn", ideal_writes), enabled=_needs_ideal)


_register_defaults()
