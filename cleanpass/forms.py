"""Facts about kernels the pass cannot read from schemas: out-of-place forms (folding relies on
them) and which arguments accept any strides and storage offset (strided-view removal does).

`cleanpass` knows no kernel by itself; whoever defines kernels registers them here
(`register_out_of_place`). The out-of-place op takes the in-place op's arguments, by the same
names and in the same order, followed by one output argument per mutated argument. It reads
every input argument and writes the outputs; an output may be its own input (that argument is
then updated in place), so one kernel serves a call where only some arguments are folded.

Per mutated argument the registration says whether the kernel overwrites every element of it
(a partial rotary leaves the tail: folding it would leave the tail of the fresh buffer
unwritten), either as a bool or as a predicate on the in-place call node.

A kernel that reads the strides and storage offset of some arguments at run time says so with
`register_any_layout`, per argument, as a bool or as a predicate on the argument's new (fake)
value (a row kernel may need its leading dims to collapse without a copy). Only then may
`cleanpass.strided` hand it the source view of a removed clone instead of the clone's dense copy.

A kernel whose only effects are the writes its schema annotates says so with
`register_effects_known`; only then may a call that writes nothing but private clones nobody
reads be erased as dead (`cleanpass.dead`, condition D3).

The registries are process-wide, like torch's own op registry: kernels register once at import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union

import torch
from torch.fx import Node

from ._compat import OpOverload

Overwrites = Union[bool, Callable[[Node], bool]]
Accepts = Union[bool, Callable[[torch.Tensor], bool]]


@dataclass(frozen=True)
class OutOfPlaceForm:
    """An in-place kernel and its out-of-place form (see the module docstring)."""

    inplace: OpOverload
    out_of_place: OpOverload
    outputs: tuple[tuple[str, str], ...]  # (mutated argument, output argument), schema order
    overwrites: tuple[tuple[str, Overwrites], ...]
    any_input_layout: bool  # the kernel reads input strides at run time

    def output_for(self, argument: str) -> str | None:
        return dict(self.outputs).get(argument)

    def overwrites_all(self, call: Node, argument: str) -> bool:
        """Whether the call writes every element of `argument` (unknown: no)."""
        verdict = dict(self.overwrites).get(argument, False)
        return bool(verdict(call)) if callable(verdict) else bool(verdict)


_FORMS: dict[OpOverload, OutOfPlaceForm] = {}


def _argument_names(op: OpOverload) -> list[str]:
    return [argument.name for argument in op._schema.arguments]


def register_out_of_place(inplace: OpOverload, out_of_place: OpOverload,
                          outputs: Mapping[str, str], overwrites: Mapping[str, Overwrites] | None = None,
                          any_input_layout: bool = False) -> OutOfPlaceForm:
    """Declare `out_of_place` as the out-of-place form of the in-place kernel `inplace`.

    `outputs` maps each mutated argument of `inplace` to its output argument of
    `out_of_place`; `overwrites` says per mutated argument whether every element is written
    (default: yes for all). `any_input_layout`: the form accepts inputs of any strides and
    storage offset (else folding requires the source to have the clone's layout).
    """
    names, out_names = _argument_names(inplace), _argument_names(out_of_place)
    mutated = [a.name for a in inplace._schema.arguments
               if a.alias_info is not None and a.alias_info.is_write]
    if sorted(outputs) != sorted(mutated):
        raise ValueError(f"{inplace}: outputs {sorted(outputs)} must name its mutated arguments {mutated}")
    expected = names + [outputs[m] for m in mutated]
    if out_names != expected:
        raise ValueError(f"{out_of_place}: arguments {out_names}; expected {expected}")
    declared = overwrites if overwrites is not None else {m: True for m in mutated}
    form = OutOfPlaceForm(inplace, out_of_place, tuple((m, outputs[m]) for m in mutated),
                          tuple((m, declared.get(m, False)) for m in mutated), any_input_layout)
    _FORMS[inplace] = form
    return form


def out_of_place_form(target: object) -> OutOfPlaceForm | None:
    """The registered form of a node target, if any."""
    return _FORMS.get(target) if isinstance(target, OpOverload) else None


_ANY_LAYOUT: dict[OpOverload, dict[str, Accepts]] = {}


def register_any_layout(kernel: OpOverload, accepts: Mapping[str, Accepts] | None = None) -> None:
    """Declare that `kernel` (which returns nothing) reads strides and storage offset at run time.

    `accepts` maps argument names to True or to a predicate on the argument's value (a fake
    tensor); the default is every tensor argument, unconditionally. A kernel that returns
    values is refused: the pass would have to know the layout of what it returns.
    """
    if kernel._schema.returns:
        raise ValueError(f"{kernel}: only kernels that return nothing may declare any-layout arguments")
    names = _argument_names(kernel)
    declared = dict(accepts) if accepts is not None else {
        a.name: True for a in kernel._schema.arguments if str(a.type).startswith("Tensor")}
    unknown = sorted(set(declared) - set(names))
    if unknown:
        raise ValueError(f"{kernel}: no arguments named {unknown}")
    _ANY_LAYOUT[kernel] = declared


def declares_any_layout(target: object) -> bool:
    """Whether kernel `target` registered any-layout arguments (`register_any_layout`)."""
    return isinstance(target, OpOverload) and target in _ANY_LAYOUT


def accepts_layout(target: object, argument: str, value: torch.Tensor) -> bool:
    """Whether kernel `target` takes `value` (any strides, any offset) as `argument`; unknown: no."""
    declared = _ANY_LAYOUT.get(target) if isinstance(target, OpOverload) else None
    verdict = declared.get(argument, False) if declared is not None else False
    try:
        return bool(verdict(value)) if callable(verdict) else bool(verdict)
    except Exception:  # a predicate that cannot decide declines
        return False


# id -> op: asked for every unused node, and `OpOverload.__hash__` runs in Python (the op is
# kept alive here, so its id is never reused)
_EFFECTS_KNOWN: dict[int, OpOverload] = {}


def register_effects_known(kernel: OpOverload) -> None:
    """Declare that `kernel`'s only effects are the writes its schema annotates (`Tensor(a!)`):
    no collective, no I/O, no state outside its arguments. Then a call whose written arguments
    are clones nobody else uses is dead (`cleanpass.dead`). Without it a kernel is assumed to
    act outside the graph, whatever else is registered for it."""
    if not kernel._schema.is_mutable:
        raise ValueError(f"{kernel}: only kernels that write an argument may declare their effects")
    _EFFECTS_KNOWN[id(kernel)] = kernel


def effects_known(target: object) -> bool:
    """Whether kernel `target` declared its schema writes are its only effects."""
    return id(target) in _EFFECTS_KNOWN


def _verdict_key(verdict: object) -> str:
    return repr(verdict) if isinstance(verdict, bool) else getattr(verdict, "__qualname__", type(verdict).__name__)


def registered_facts() -> str:
    """Every registered kernel fact as one stable text: a compile cache key must change with it
    (a kernel declared foldable changes what the pass emits for the same graph)."""
    forms = sorted(f"{form.inplace}->{form.out_of_place}:{form.outputs}:"
                   f"{[(m, _verdict_key(v)) for m, v in form.overwrites]}:{form.any_input_layout}"
                   for form in _FORMS.values())
    layouts = sorted(f"{kernel}:{sorted((a, _verdict_key(v)) for a, v in declared.items())}"
                     for kernel, declared in _ANY_LAYOUT.items())
    known = sorted(f"effects:{kernel}" for kernel in _EFFECTS_KNOWN.values())
    return ";".join(forms + layouts + known)
