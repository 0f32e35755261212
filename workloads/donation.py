"""Pre-grad donation pass: ``maybe_inplace`` calls give up their activations.

For each ``cleanpass_ir.<op>.maybe_inplace`` node (Torch IR, before AOTAutograd):
1. every activation argument (``IROp.activations``) is traced back through whole-tensor views
   (``view``, ``reshape``, ``flatten``, ``squeeze``, ``transpose``, ...: every element of the
   input, nothing else). If that reaches a graph input, the input is recorded as donated, by its
   placeholder position: ``x.view(-1, H)`` donates ``x``.
2. an argument that is only part of a graph input (a slice, a split, an expand) or a view the
   pass cannot map is not donated; a warning names the argument and its source line, once.
3. if the donated value, or any view of it, is used again after the call (directly, or by a
   second donation), raise ``DonationError`` naming both source lines.
4. under autograd (grad mode on and a tensor argument that requires grad) raise
   ``DonationError``: the backward pass may still need the donated activation.
5. the node is retargeted to the functional overload, so AOTAutograd sees a plain functional op.
The recorded positions are those of the pre-grad placeholders; ``DonationState`` carries them to
the post-grad pipeline pass, which hands them to ``cleanpass.CloneEliminationPass`` through
``cleanpass.donated_inputs`` (after checking the placeholder count still matches). That is the
one way donation reaches the pass. What a workload *declares* (``Built.donated``: which of its
inputs a caller may find overwritten) is checked against the same ``maybe_inplace`` calls by
``check_declared``, so the harness never trusts a declaration the model code does not make.
"""
from __future__ import annotations

import logging
import operator
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import fx
from torch.overrides import TorchFunctionMode

import cleanpass

from workloads import compat
from workloads.ir import ir_op_of, is_maybe_inplace

log = logging.getLogger(__name__)

# Views that keep every element of their input (shape or stride changes only).
WHOLE_VIEWS = frozenset({"view", "reshape", "flatten", "unflatten", "view_as", "squeeze", "unsqueeze",
                         "transpose", "permute", "t", "_unsafe_view"})
# Views that may keep only part of their input, or repeat it.
PART_VIEWS = frozenset({"getitem", "__getitem__", "narrow", "select", "slice", "split", "split_with_sizes",
                        "chunk", "unbind", "expand", "expand_as", "as_strided", "diagonal", "unfold",
                        "tensor_split"})
# Ops whose result may share the input's storage: followed when looking for later uses.
MAY_ALIAS = WHOLE_VIEWS | PART_VIEWS | {"contiguous"}
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')

GRAD_MESSAGE = ("maybe_inplace gives up its activations, but autograd may still need them for the "
                "backward pass: run the model under torch.inference_mode() (or call the functional overload)")


class DonationError(RuntimeError):
    """A donation the program cannot honour (a donated activation used later, or under autograd)."""


class DeclarationError(ValueError):
    """A workload's declared donated inputs differ from what its ``maybe_inplace`` calls donate."""


class GraphLog:
    """One entry per compiled graph, oldest first. A trace Dynamo restarts (same compile id,
    later attempt) replaces its own entry; any other trace appends (ids repeat after a reset)."""

    def __init__(self) -> None:
        self.entries: list[Any] = []
        self._where: dict[Any, tuple[int, int]] = {}   # key -> (attempt, index in entries)

    def record(self, value: Any, key: Any = None) -> None:
        """Record ``value`` for the current trace (``key`` tells graphs of one trace apart)."""
        tid = compat.trace_id()
        if tid is not None:
            seen = self._where.get((tid[0], key))
            if seen is not None and tid[1] > seen[0]:
                self.entries[seen[1]] = value
                self._where[tid[0], key] = (tid[1], seen[1])
                return
            self._where[tid[0], key] = (tid[1], len(self.entries))
        self.entries.append(value)


@dataclass
class DonationState:
    """What the last pre-grad run recorded, read by the post-grad pass of the same graph."""

    donated: tuple[int, ...] = ()
    num_placeholders: int | None = None
    log: GraphLog = field(default_factory=GraphLog)
    warned: set[tuple[str, str]] = field(default_factory=set)

    @property
    def history(self) -> list[tuple[int, ...]]:
        """Donated positions per compiled graph, oldest first."""
        return self.log.entries


def source_line(node: fx.Node) -> str:
    """``file.py:12 (code)`` of the user's frame that created ``node``; its name if unknown."""
    frames = _FRAME.findall(node.meta.get("stack_trace") or "")
    if not frames:
        return f"node {node.name}"
    path, line, _, code = frames[-1]
    return f"{path.rsplit('/', 1)[-1]}:{line} ({code.strip()})"


def _view_name(node: fx.Node) -> str | None:
    """The op's short name (``view``, ``getitem``, ...) for a node that calls something."""
    if node.op == "call_method":
        return str(node.target)
    if node.op != "call_function":
        return None
    if node.target is operator.getitem:
        return "getitem"
    if isinstance(node.target, compat.OpOverload):
        return node.target._opname
    return getattr(node.target, "__name__", None)


def _is_view(node: fx.Node, names: frozenset[str]) -> bool:
    return (_view_name(node) in names and bool(node.args) and isinstance(node.args[0], fx.Node))


T = TypeVar("T")


@dataclass(frozen=True)
class Reached:
    """Where a ``maybe_inplace`` argument leads back to through views.

    ``whole``: the tensor the argument covers entirely (after whole-tensor views only); the input
    donated, when it is one. ``base``: the tensor reached through any views; when it is an input
    but ``whole`` is not, the argument is only part of it and ``through`` names the partial view.
    """

    whole: Any
    base: Any
    through: str | None


def follow_views(value: T, parent: Callable[[T], tuple[str | None, T] | None]) -> Reached:
    """The donation rule, shared by the graph pass and the eager declaration check so they cannot
    disagree. ``parent(v)`` is ``(op name, the tensor v was computed from)``, None for a leaf."""
    whole = value
    while (step := parent(whole)) is not None and step[0] in WHOLE_VIEWS:
        whole = step[1]
    base, through = whole, None
    while (step := parent(base)) is not None and step[0] in WHOLE_VIEWS | PART_VIEWS:
        through = through or step[0]
        base = step[1]
    return Reached(whole, base, through)


def _graph_parent(node: fx.Node) -> tuple[str | None, fx.Node] | None:
    if node.args and isinstance(node.args[0], fx.Node):
        return _view_name(node), node.args[0]
    return None


def _view_family(root: fx.Node) -> set[fx.Node]:
    """``root`` and every view derived from it (transitively): all of them share its storage."""
    family, todo = {root}, [root]
    while todo:
        for user in todo.pop().users:
            if user not in family and _is_view(user, MAY_ALIAS) and user.args[0] in family:
                family.add(user)
                todo.append(user)
    return family


def _requires_grad(arg: Any) -> bool:
    val = arg.meta.get("example_value", arg.meta.get("val")) if isinstance(arg, fx.Node) else None
    return isinstance(val, torch.Tensor) and val.requires_grad


def _check_grad(node: fx.Node) -> None:
    """Rule 4: donation under autograd is refused at trace time."""
    if torch.is_grad_enabled() and any(_requires_grad(a) for a in node.args):
        raise DonationError(f"{source_line(node)}: {GRAD_MESSAGE}")


def _check_no_later_use(node: fx.Node, arg_name: str, root: fx.Node, order: dict[fx.Node, int]) -> None:
    """Rule 3: nothing reads the donated storage (root or any view of it) after ``node``."""
    family = _view_family(root)
    later = sorted((u for m in family for u in m.users
                    if u is not node and u not in family and order[u] > order[node]), key=order.get)
    if later:
        raise DonationError(
            f"{source_line(node)} donates {arg_name} (graph value {root.name}), but {source_line(later[0])} "
            f"uses it afterwards; pass a copy or call the functional overload")


def _warn_once(node: fx.Node, message: str, warned: set[tuple[str, str]]) -> None:
    key = (source_line(node), message)
    if key not in warned:
        warned.add(key)
        log.warning("%s: %s", source_line(node), message)


def find_donations(graph: fx.Graph, warned: set[tuple[str, str]] | None = None) -> tuple[int, ...]:
    """Record, check and retarget every ``maybe_inplace`` node; return donated positions."""
    warned = set() if warned is None else warned
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    position = {n: i for i, n in enumerate(placeholders)}
    order = {n: i for i, n in enumerate(graph.nodes)}
    donated: list[int] = []
    for node in list(graph.nodes):
        if node.op != "call_function" or not is_maybe_inplace(node.target):
            continue
        _check_grad(node)
        op = ir_op_of(node.target)
        names = [a.name for a in op.functional._schema.arguments]
        for pos in op.activations:
            if pos >= len(node.args) or not isinstance(node.args[pos], fx.Node):
                continue
            reached = follow_views(node.args[pos], _graph_parent)
            _check_no_later_use(node, names[pos], reached.whole, order)
            if reached.whole in position:
                donated.append(position[reached.whole])
            elif reached.base in position:
                _warn_once(node, f"argument `{names[pos]}` of {op.name}.maybe_inplace is only part of graph "
                                 f"input {reached.base.name} (through {reached.through}); that input is "
                                 f"not donated", warned)
        node.target = op.functional
    return tuple(sorted(set(donated)))


class DonationPass(compat.CustomGraphPass):
    """The pre-grad pass object handed to Inductor (``pre_grad_custom_pass``)."""

    def __init__(self, state: DonationState | None = None) -> None:
        self.state = state if state is not None else DonationState()

    def __call__(self, graph: fx.Graph) -> None:
        self.state.donated = find_donations(graph, self.state.warned)
        self.state.num_placeholders = sum(1 for n in graph.nodes if n.op == "placeholder")
        self.state.log.record(self.state.donated)
        if self.state.donated:
            log.debug("donated placeholder positions %s", self.state.donated)

    def uuid(self) -> str:
        return cleanpass.hash_files([__file__], extra="donation")


class _DonationRecorder(TorchFunctionMode):
    """Sees every call of an eager run: remembers which tensor each view was taken from, and at
    each ``maybe_inplace`` call notes the inputs it gives up under ``follow_views``' rule."""

    def __init__(self, inputs: Sequence[Any]) -> None:
        super().__init__()
        self.position = {id(x): i for i, x in enumerate(inputs) if isinstance(x, torch.Tensor)}
        # id(view) -> (op name, its source); an entry lives as long as its view
        self.parents: dict[int, tuple[str, torch.Tensor]] = {}
        self.donated: set[int] = set()

    def _parent(self, key: int) -> tuple[str, int] | None:
        found = self.parents.get(key)
        return None if found is None else (found[0], id(found[1]))

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if is_maybe_inplace(func):
            for pos in ir_op_of(func).activations:
                if pos < len(args) and isinstance(args[pos], torch.Tensor):
                    whole = follow_views(id(args[pos]), self._parent).whole
                    if whole in self.position:
                        self.donated.add(self.position[whole])
        out = func(*args, **(kwargs or {}))
        if not args or not isinstance(args[0], torch.Tensor):
            return out
        name = getattr(func, "__name__", "")
        if name not in WHOLE_VIEWS | PART_VIEWS:
            # an op that hands back its input (contiguous() of a contiguous tensor) makes a new
            # value in the graph, never the input itself: the same here
            return out.view_as(out) if isinstance(out, torch.Tensor) and any(out is a for a in args) else out
        for result in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(result, torch.Tensor):
                self.parents[id(result)] = (name, args[0])
                weakref.finalize(result, self.parents.pop, id(result), None)
        return out


def observed_donations(fn: Callable[..., Any], inputs: Sequence[Any]) -> tuple[int, ...]:
    """Positions of ``inputs`` that ``fn``'s ``maybe_inplace`` calls give up (directly or through
    whole-tensor views), from one eager call (the eager ``maybe_inplace`` is functional, so
    ``inputs`` are left as they were)."""
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
