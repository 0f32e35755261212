"""IR op declarations and their provider implementations.

Every IR op lives in the ``cleanpass_ir`` namespace with two overloads:

- ``default``: functional; never mutates, outputs never alias inputs.
- ``maybe_inplace``: the caller gives up its activations (``IROp.activations``); the
  donation pass retargets it to ``default`` and records the donated graph inputs, so the
  outputs may end up in the activations' storage.

Implementations ("providers") are kernels registered as their own opaque custom ops in the
``cleanpass_kernels`` namespace. Each is marked in-place or not, has a ``supports(*args)``
check and a priority; the native torch definition (the op's own kernel) is always the fallback.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

import cleanpass

from workloads import compat
from workloads.ir import autograd

log = logging.getLogger(__name__)

NAMESPACE = "cleanpass_ir"
KERNEL_NAMESPACE = "cleanpass_kernels"
NATIVE = "native"

LIB = torch.library.Library(NAMESPACE, "DEF")


def always(*args: Any) -> bool:
    """A ``supports`` check that accepts anything."""
    return True


@dataclass(frozen=True)
class Impl:
    """One provider's implementation of an IR op.

    For an in-place kernel, ``writes`` are the IR argument positions it mutates (the lowering
    clones exactly those) and ``outputs[i]`` is the IR argument position whose clone holds
    output ``i`` after the call. A functional kernel takes the IR op's arguments unchanged.
    ``out_of_place`` is the in-place kernel's out-of-place form: the same arguments plus
    ``<name>_out`` per mutated argument (an output may be its input); it reads strides at run
    time and writes every element of its outputs. It is registered with cleanpass for folding.
    ``any_layout`` says whether the in-place kernel takes its mutated arguments with any strides
    and storage offset (True, or a predicate on the argument's value: a row kernel needs its
    leading dims to collapse); registered with cleanpass, which may then hand it a strided
    view in place of a clone.
    """

    provider: str
    kernel: Any  # OpOverload of the kernel op
    inplace: bool
    priority: int
    supports: Callable[..., bool] = always
    writes: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    out_of_place: Any = None  # OpOverload of the out-of-place form, for in-place kernels
    any_layout: bool | Callable[[torch.Tensor], bool] = False


@dataclass
class IROp:
    """A declared IR op: schema, native definition, float64 reference and providers."""

    name: str
    schema: str
    activations: tuple[int, ...]
    native: Callable[..., Any]
    reference: Callable[..., Any]
    fake: Callable[..., Any]
    read_bytes: ReadBytes
    impls: list[Impl] = field(default_factory=list)

    @property
    def packet(self) -> Any:
        return getattr(getattr(torch.ops, NAMESPACE), self.name)

    @property
    def functional(self) -> Any:
        return self.packet.default

    @property
    def maybe_inplace(self) -> Any:
        return self.packet.maybe_inplace

    def bytes_moved(self, args: Sequence[Any], written: Sequence[Any] | None = None) -> int:
        """The op's byte model: what one call must read (``read_bytes`` of its arguments) plus
        every element it writes (``written``, default: the outputs its fake returns).

        Sizes are those of the tensors passed, views included (numel x element size, never the
        base buffer), so the same model serves the in-place kernel, its out-of-place form and a
        functional kernel, on whatever layout they are handed.
        """
        if written is None:
            written = _flat(self.fake(*[_meta(a) for a in args]))
        return int(self.read_bytes(args)) + sum(tensor_bytes(t) for t in written)

    def providers(self) -> list[str]:
        """Provider names by priority, the native fallback last."""
        return [i.provider for i in sorted(self.impls, key=lambda i: -i.priority)] + [NATIVE]

    def choose(self, args: Sequence[Any], providers: Sequence[str] | None = None) -> Impl | None:
        """The highest-priority allowed implementation that supports ``args``; None = native."""
        for impl in sorted(self.impls, key=lambda i: -i.priority):
            if providers is not None and impl.provider not in providers:
                continue
            try:
                if impl.supports(*args):
                    return impl
            except Exception as e:  # a check that cannot decide declines
                log.debug("%s/%s supports() raised %r; skipped", self.name, impl.provider, e)
        return None


#: An op's reads in bytes, from its IR arguments (sizes of the views passed).
ReadBytes = Callable[[Sequence[Any]], int]


def tensor_bytes(t: Any) -> int:
    """numel x element size of a tensor (a view counts its own elements); 0 for non-tensors."""
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def _meta(a: Any) -> Any:
    if not isinstance(a, torch.Tensor):
        return a
    return torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device="meta")


def _flat(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


OPS: dict[str, IROp] = {}


def define_op(
    name: str,
    schema: str,
    *,
    native: Callable[..., Any],
    fake: Callable[..., Any],
    reference: Callable[..., Any],
    activations: tuple[int, ...],
    read_bytes: ReadBytes,
) -> IROp:
    """Declare ``cleanpass_ir::name`` (default + maybe_inplace) with native and fake kernels.

    ``schema`` is the part after the name, e.g. ``"(Tensor x, Tensor? weight, float eps) -> Tensor"``.
    ``read_bytes`` is the read half of the op's byte model (``IROp.bytes_moved``).
    """
    LIB.define(f"{name}{schema}")
    LIB.define(f"{name}.maybe_inplace{schema}")
    for overload in ("", ".maybe_inplace"):
        LIB.impl(f"{name}{overload}", native, "CompositeExplicitAutograd")
        torch.library.register_fake(f"{NAMESPACE}::{name}{overload}", fake, lib=LIB)
    autograd.register(f"{NAMESPACE}::{name}", native, LIB)
    op = IROp(name, schema, activations, native, reference, fake, read_bytes)
    OPS[name] = op
    return op


def register_impl(op_name: str, impl: Impl) -> None:
    """Add a provider implementation to an IR op; tell cleanpass about its out-of-place form and
    the layouts its in-place kernel takes."""
    OPS[op_name].impls.append(impl)
    mutated = [a.name for a in impl.kernel._schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    if impl.inplace and impl.out_of_place is not None:
        cleanpass.register_out_of_place(impl.kernel, impl.out_of_place,
                                        outputs={m: f"{m}_out" for m in mutated}, any_input_layout=True)
    if impl.inplace and impl.any_layout:
        cleanpass.register_any_layout(impl.kernel, {m: impl.any_layout for m in mutated})


def kernel_call_bytes(kernel: Any, args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> int | None:
    """Bytes one call of a registered kernel moves, from its IR op's byte model applied to the
    arguments it is called with; None for any other target.

    In-place kernels write their mutated arguments, out-of-place forms the ``*_out`` arguments
    that follow the IR op's own, functional kernels what their fake returns.
    """
    found = _kernel_impl(kernel)
    if found is None:
        return None
    op, impl = found
    flat = _schema_args(kernel, args, kwargs or {})
    n = len(op.functional._schema.arguments)
    if kernel is impl.out_of_place:
        return op.bytes_moved(flat[:n], flat[n:])
    if impl.inplace:
        return op.bytes_moved(flat[:n], [flat[p] for p in impl.writes])
    return op.bytes_moved(flat[:n])


def is_ir_kernel(target: Any) -> bool:
    """True for a registered kernel of an IR op (in place, out of place or functional)."""
    return _kernel_impl(target) is not None


def _kernel_impl(kernel: Any) -> tuple[IROp, Impl] | None:
    for op in OPS.values():
        for impl in op.impls:
            if kernel is impl.kernel or (impl.out_of_place is not None and kernel is impl.out_of_place):
                return op, impl
    return None


def _schema_args(kernel: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> list[Any]:
    """A call's arguments in schema order (keyword and default ones folded in)."""
    flat = list(args)
    for a in kernel._schema.arguments[len(flat):]:
        flat.append(kwargs.get(a.name, a.default_value))
    return flat


def ir_op_of(target: Any) -> IROp | None:
    """The IROp a graph node target belongs to (any overload or the packet), else None."""
    found = compat.op_namespace_and_name(target)
    if found is None or found[0] != NAMESPACE:
        return None
    return OPS.get(found[1])


def is_maybe_inplace(target: Any) -> bool:
    """True for an IR op's ``maybe_inplace`` overload (a packet call means ``default``)."""
    return ir_op_of(target) is not None and getattr(target, "_overloadname", "") == "maybe_inplace"
