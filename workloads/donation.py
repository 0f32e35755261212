"""Pre-grad donation pass: ``maybe_inplace`` calls give up their activations.

For each ``cleanpass_ir.<op>.maybe_inplace`` node (Torch IR, before AOTAutograd):
1. every activation argument (``IROp.activations``) that is a graph input is recorded as
   donated, by its placeholder position;
2. if the donated value is used again after the call (directly, or by a second donation),
   raise ``DonationError`` naming the node and the later user;
3. the node is retargeted to the functional overload, so AOTAutograd sees a plain functional op.
The recorded positions are those of the pre-grad placeholders; ``DonationState`` carries them to
the post-grad pipeline pass, which hands them to ``cleanpass.CloneEliminationPass`` through
``cleanpass.donated_inputs`` (after checking the placeholder count still matches). That is the
one way donation reaches the pass. What a workload *declares* (``Built.donated``: which of its
inputs a caller may find overwritten) is checked against the same ``maybe_inplace`` calls by
``check_declared``, so the harness never trusts a declaration the model code does not make.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import fx
from torch.overrides import TorchFunctionMode

import cleanpass

from workloads import compat
from workloads.ir import ir_op_of, is_maybe_inplace

log = logging.getLogger(__name__)


class DonationError(RuntimeError):
    """A donated activation was used after the ``maybe_inplace`` call that gave it up."""


class DeclarationError(ValueError):
    """A workload's declared donated inputs differ from what its ``maybe_inplace`` calls donate."""


@dataclass
class DonationState:
    """What the last pre-grad run recorded, read by the post-grad pass of the same graph."""

    donated: tuple[int, ...] = ()
    num_placeholders: int | None = None
    history: list[tuple[int, ...]] = field(default_factory=list)


def find_donations(graph: fx.Graph) -> tuple[int, ...]:
    """Record, check and retarget every ``maybe_inplace`` node; return donated positions."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    position = {n: i for i, n in enumerate(placeholders)}
    order = {n: i for i, n in enumerate(graph.nodes)}
    donated: list[int] = []
    for node in list(graph.nodes):
        if node.op != "call_function" or not is_maybe_inplace(node.target):
            continue
        op = ir_op_of(node.target)
        for pos in op.activations:
            if pos >= len(node.args) or not isinstance(node.args[pos], fx.Node):
                continue
            act = node.args[pos]
            later = [u for u in act.users if u is not node and order[u] > order[node]]
            if later:
                raise DonationError(
                    f"{node.name} ({node.target}) donates {act.name}, but {later[0].name} "
                    f"uses it afterwards; pass a copy or call the functional overload")
            if act in position:
                donated.append(position[act])
        node.target = op.functional
    return tuple(sorted(set(donated)))


class DonationPass(compat.CustomGraphPass):
    """The pre-grad pass object handed to Inductor (``pre_grad_custom_pass``)."""

    def __init__(self, state: DonationState | None = None) -> None:
        self.state = state if state is not None else DonationState()

    def __call__(self, graph: fx.Graph) -> None:
        self.state.donated = find_donations(graph)
        self.state.num_placeholders = sum(1 for n in graph.nodes if n.op == "placeholder")
        self.state.history.append(self.state.donated)
        if self.state.donated:
            log.debug("donated placeholder positions %s", self.state.donated)

    def uuid(self) -> str:
        return cleanpass.hash_files([__file__], extra="donation")


class _DonationRecorder(TorchFunctionMode):
    """Sees every ``maybe_inplace`` call of an eager run and notes the activations it gives up."""

    def __init__(self, inputs: Sequence[Any]) -> None:
        super().__init__()
        self.position = {id(x): i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)}
        self.donated: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if is_maybe_inplace(func):
            for pos in ir_op_of(func).activations:
                if pos < len(args) and id(args[pos]) in self.position:
                    self.donated.add(self.position[id(args[pos])])
        return func(*args, **(kwargs or {}))


def observed_donations(fn: Callable[..., Any], inputs: Sequence[Any]) -> tuple[int, ...]:
    """Positions of ``inputs`` that ``fn``'s ``maybe_inplace`` calls give up, from one eager call
    (the eager ``maybe_inplace`` is functional, so ``inputs`` are left as they were)."""
    recorder = _DonationRecorder(inputs)
    with torch.no_grad(), recorder:
        fn(*inputs)
    return tuple(sorted(recorder.donated))


def check_declared(name: str, fn: Callable[..., Any], inputs: Sequence[Any],
                   declared: Sequence[int]) -> tuple[int, ...]:
    """Raise ``DeclarationError`` unless ``fn`` donates exactly the ``declared`` input positions."""
    observed = observed_donations(fn, inputs)
    if observed != tuple(sorted(declared)):
        raise DeclarationError(
            f"{name}: Built.donated declares inputs {tuple(sorted(declared))} donated, but its "
            f"maybe_inplace calls donate {observed}; fix the declaration or the model code")
    return observed
