"""Explain the pass on a user's own program: every clone, what the pass decided, why, and what it saves.

    print(cleanpass.explain.explain(model, x, lower=my_lowering))

``explain`` compiles ``fn`` once on the example inputs, takes each graph exactly as it reaches
the clone-elimination slot, runs the pass on a copy, checks the result against the original
with the differential checker (``cleanpass.verify``), and returns one table: per clone, the value
it copies (in the user's names where Dynamo recorded them: arguments, parameters, and the source
line that made it), the op it was made for, the decision and its reason, and the bytes saved.

The clones a serving stack's pass removes are made by a *lowering*: functional ops become
in-place kernels on protective clones. cleanpass does not know anyone's lowering (it imports
nothing of its own project's), so the lowering is injected: ``lower(fn, inputs)`` compiles
``fn`` and returns the graphs as they reach the pass (``Lowered``). ``capture`` is the one
cleanpass brings: Inductor's post-grad graphs with an optional ``graph_pass`` run first, which is
the lowering of anyone who plugs one into ``post_grad_custom_post_pass`` ahead of cleanpass;
``workloads.explain`` supplies the project's own IR lowering this way, and a vLLM pipeline can
supply vLLM's. The graphs explained are inference graphs: ``explain`` compiles under
``torch.no_grad()``.
"""
from __future__ import annotations

import inspect
import itertools
import logging
import re
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import fx

from . import decisions, verify
from ._compat import CustomGraphPassBase
from .decisions import CloneReport, Decision
from .donation import current_donated
from .eliminate import eliminate_clones_in_graph

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lowered:
    """One graph as it reaches the clone-elimination slot (after the lowering that made the
    clones): the graph (a copy the caller may keep), the placeholder positions the caller gives
    up, and each placeholder's name in Dynamo's terms (``L['args'][1]``; empty when unknown)."""

    graph: fx.Graph
    donated: tuple[int, ...] = ()
    inputs: tuple[str, ...] = ()


#: ``lower(fn, example_inputs) -> graphs``: compile ``fn`` and return its graphs as they reach
#: the pass. ``capture`` is cleanpass's own; ``workloads.explain.lower`` is the project's IR lowering.
Lower = Callable[[Callable[..., Any], Sequence[Any]], list[Lowered]]

#: One line per reason: what the pass saw (the reason strings themselves are the contract).
WHY = {
    decisions.REMOVED: "nothing can observe the merged storage",
    decisions.FOLDED: "had to stay; its kernel now writes a fresh buffer out of place (no copy)",
    decisions.SOURCE_READ_AFTER_WRITE: "the source (or an alias) is read after the clone is written",
    decisions.SOURCE_WRITTEN_WHILE_LIVE: "the source is written while the clone's value is needed",
    decisions.READ_ONLY_INPUT: "the clone is written and its source is an input the caller keeps",
    decisions.LAYOUT_DIFFERS: "the clone changes the layout (size, strides, offset or dtype)",
    decisions.LAYOUT_UNKNOWN: "no fake tensor tells the layout",
    decisions.STRIDED_VIEW_INVALID: "a view of the clone is no view on the source's strides",
    decisions.STRIDED_USER: "a reader may need the clone's dense layout",
    decisions.STRIDED_OUTPUT: "the caller would see the source's strides in an output",
    decisions.STRIDED_UNVERIFIED: "the strided layout could not be re-checked through the readers",
    decisions.OUTPUT_WOULD_ALIAS_INPUT: "an output would alias an input the caller keeps",
    decisions.OUTPUTS_WOULD_ALIAS: "two outputs would share storage",
    decisions.UNSUPPORTED_CLONE: "a clone form the pass does not know",
    decisions.ANALYSIS_ERROR: "the analysis failed on this graph; everything kept",
}


def copy_graph(graph: fx.Graph) -> fx.Graph:
    """A node-for-node copy (same names; each node's meta a shallow copy, fake values shared)."""
    new = fx.Graph()
    new.output(new.graph_copy(graph, {}))
    return new


def input_names(graph: fx.Graph) -> tuple[str, ...]:
    """Dynamo's name for each placeholder of a graph Dynamo made (``L['args'][0]``,
    ``L['self']._modules['norm']._parameters['weight']``), read where a pre-grad pass sees it."""
    names = []
    for node in graph.nodes:
        if node.op != "placeholder":
            continue
        name = getattr(getattr(node.meta.get("grapharg"), "source", None), "name", None)
        name = name() if callable(name) else name  # a method before torch 2.13, a property since
        names.append(name if isinstance(name, str) else node.name)
    return tuple(names)


_ATTR = re.compile(r"\._(?:modules|parameters|buffers)\['([^']+)'\]")
_DOTTED = r".\1"


def user_name(dynamo_name: str, params: Sequence[str] = ()) -> str:
    """``L['args'][1]`` -> the function's second parameter; ``L['fn']._modules['norm']._parameters
    ['weight']`` -> ``norm.weight``; anything else as it is."""
    name = _ATTR.sub(_DOTTED, dynamo_name)
    found = re.fullmatch(r"L\['args'\]\[(\d+)\](.*)", name)
    if found:
        index = int(found.group(1))
        return (params[index] if index < len(params) else f"input {index}") + found.group(2)
    found = re.fullmatch(r"L\['(?:fn|self)'\]\.?(.*)", name)
    if found:
        return found.group(1) or "self"
    found = re.fullmatch(r"L\['(?:kwargs'\]\[')?([^']+)'\](.*)", name)
    return found.group(1) + found.group(2) if found else name


def parameters_of(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The positional parameter names of ``fn`` (of ``forward`` for a module)."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return tuple(p.name for p in inspect.signature(target).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    except (TypeError, ValueError):
        return ()


_ENTRIES = itertools.count()


def fresh_entry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` behind a code object of its own, so Dynamo compiles it anew (its cache lives on the
    code object: a second ``explain`` of the same function would otherwise reuse the first)."""
    def entry(*args: Any) -> Any:
        return fn(*args)

    code = entry.__code__.replace(co_name=f"cleanpass_explain_{next(_ENTRIES)}")
    return types.FunctionType(code, entry.__globals__, code.co_name, None, entry.__closure__)


class _Names(CustomGraphPassBase):
    """Pre-grad: records Dynamo's placeholder names of each graph it sees."""

    def __init__(self, sink: list[tuple[str, ...]]) -> None:
        self.sink = sink

    def __call__(self, graph: fx.Graph) -> None:
        self.sink.append(input_names(graph))

    def uuid(self) -> str:
        return f"cleanpass-explain-names-{id(self)}"


class _Capture(CustomGraphPassBase):
    """Post-grad: runs ``graph_pass`` (a lowering), then keeps a copy of the graph."""

    def __init__(self, sink: list[Lowered], names: list[tuple[str, ...]],
                 graph_pass: Callable[[fx.Graph], Any] | None) -> None:
        self.sink, self.names, self.graph_pass = sink, names, graph_pass

    def __call__(self, graph: fx.Graph) -> None:
        if self.graph_pass is not None:
            self.graph_pass(graph)
        self.sink.append(Lowered(copy_graph(graph), current_donated(), self.names[-1] if self.names else ()))

    def uuid(self) -> str:
        return f"cleanpass-explain-capture-{id(self)}"


def capture(fn: Callable[..., Any], inputs: Sequence[Any],
            graph_pass: Callable[[fx.Graph], Any] | None = None) -> list[Lowered]:
    """cleanpass's own ``lower``: compile ``fn`` with Inductor and return each post-grad graph as
    it reaches ``post_grad_custom_post_pass``, after ``graph_pass`` (a lowering of your own, or
    none). Donated positions come from an enclosing ``cleanpass.donated_inputs`` block."""
    graphs: list[Lowered] = []
    names: list[tuple[str, ...]] = []
    options = {"pre_grad_custom_pass": _Names(names),
               "post_grad_custom_post_pass": _Capture(graphs, names, graph_pass),
               "fx_graph_cache": False}
    torch.compile(fresh_entry(fn), backend="inductor", options=options)(*inputs)
    return graphs


#: The check of a graph no clone reached: the pass changed nothing.
NOTHING_TO_CHECK = "no clone reached the pass: nothing changed"


@dataclass(frozen=True)
class Row:
    """One clone of one graph, explained."""

    graph: int
    clone: str
    source: str         # the value it copies, in the user's names where the trace has them
    made_for: str       # the op that writes (or reads) the clone
    where: str          # file:line and the user's code that made it
    decision: str       # removed | folded | kept
    reason: str         # the pass's reason string (cleanpass.decisions)
    bytes_saved: int | None  # read + write of the copy, when removed or folded

    @property
    def why(self) -> str:
        return WHY.get(self.reason, "reference policy rule" if self.reason.startswith("vllm:") else "")


@dataclass
class Explanation:
    """Rows for every clone, and per graph the pass's own report and the checker's verdict."""

    rows: list[Row] = field(default_factory=list)
    reports: list[CloneReport] = field(default_factory=list)
    checks: list[verify.VerifyResult | str] = field(default_factory=list)

    @property
    def bytes_saved(self) -> int:
        return sum(r.bytes_saved or 0 for r in self.rows)

    @property
    def exact(self) -> bool:
        """Every graph with a clone checked, and bit-identical before and after the pass."""
        return all(c == NOTHING_TO_CHECK or isinstance(c, verify.VerifyResult) and c.ok for c in self.checks)

    def table(self) -> str:
        """The table ``python -m cleanpass explain`` prints."""
        head = ("#", "clone", "copies", "made for", "decision", "reason", "saved")
        body = [(str(i), r.clone, r.source, r.made_for, r.decision, r.reason, _size(r.bytes_saved))
                for i, r in enumerate(self.rows, 1)]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        line = "  ".join
        out = [line(h.ljust(w) for h, w in zip(head, widths))]
        for r, cells in zip(self.rows, body):
            out.append(line(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
            detail = "; ".join(x for x in (r.why, r.where) if x)
            if detail:
                out.append(" " * (widths[0] + 2) + detail)
        counts = {d: sum(r.decision == d for r in self.rows) for d in ("removed", "folded", "kept")}
        out.append(f"{len(self.rows)} clones: {counts['removed']} removed, {counts['folded']} folded, "
                   f"{counts['kept']} kept; {_size(self.bytes_saved)} less traffic per call")
        out += [f"graph {i}: " + _verdict(c) for i, c in enumerate(self.checks)]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()


def _size(n: int | None) -> str:
    if not n:
        return "-"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _verdict(check: verify.VerifyResult | str) -> str:
    if check == NOTHING_TO_CHECK:
        return check
    if isinstance(check, str):
        return f"not checked ({check})"
    if check.ok:
        return "bit-identical before and after the pass (cleanpass.verify, fresh random inputs)"
    return "DIFFERS: " + "; ".join(check.problems[:3])


def _code_line(node: fx.Node) -> str:
    """``file.py:12  code`` of the innermost frame of the node's stack trace."""
    trace = node.meta.get("stack_trace") or ""
    frames = re.findall(r'File "([^"]+)", line (\d+), in [^\n]*\n\s*([^\n]*)', trace)
    if not frames:
        return ""
    path, line, code = frames[-1]
    return f"{path.rsplit('/', 1)[-1]}:{line}  {code.strip()}"


def _target_name(node: fx.Node) -> str:
    target = node.target
    name = getattr(target, "_opname", None) or getattr(target, "__name__", None) or str(target)
    return str(name)


def _describe(node: fx.Node, placeholders: dict[str, str]) -> str:
    """The value a node holds, in the user's terms where known."""
    if node.op == "placeholder":
        return placeholders.get(node.name, node.name)
    if node.target is torch.ops.aten.clone.default:  # a buffer an earlier kernel wrote
        return f"{node.name}, written by {_made_for(node)}"
    modules = node.meta.get("nn_module_stack") or {}
    if modules:
        path = list(modules.values())[-1]
        path = path[0] if isinstance(path, tuple) else path
        return f"{node.name} ({user_name(str(path))})"
    return node.name


def _made_for(clone: fx.Node) -> str:
    """The op the clone was made for: its first user that is no view, clone or output."""
    for user in clone.users:
        if user.op == "call_function" and not _target_name(user).startswith(("view", "reshape", "clone")):
            return _target_name(user)
    return "-"


def _rows(index: int, before: fx.Graph, report: CloneReport, params: Sequence[str],
          names: Sequence[str]) -> list[Row]:
    nodes = {n.name: n for n in before.nodes}
    holders = [n.name for n in before.nodes if n.op == "placeholder"]
    placeholders = ({h: user_name(d, params) for h, d in zip(holders, names)}
                    if len(names) == len(holders) else {})
    decided: list[tuple[str, Decision]] = [("removed", d) for d in report.removed]
    decided += [("folded", d) for d in report.folded] + [("kept", d) for d in report.kept]
    order = {name: i for i, name in enumerate(nodes)}
    rows = []
    for verdict, d in sorted(decided, key=lambda item: order.get(item[1].clone, 0)):
        clone = nodes.get(d.clone)
        source = nodes.get(d.source)
        where = ""
        if clone is not None:
            where = _code_line(clone) or next((_code_line(u) for u in clone.users if _code_line(u)), "")
        rows.append(Row(index, d.clone, _describe(source, placeholders) if source is not None else d.source,
                        _made_for(clone) if clone is not None else "-", where, verdict, d.reason,
                        2 * d.bytes if verdict != "kept" and d.bytes else None))
    return rows


def explain(fn: Callable[..., Any], *inputs: Any, lower: Lower = capture, policy: str = "sound",
            fold: bool = True, trials: int = 2) -> Explanation:
    """Compile ``fn`` on ``inputs`` through ``lower``, run the pass on each graph, check it, and
    explain every clone (see the module docstring). ``inputs`` are the example inputs (not
    modified: the compile runs on copies)."""
    params = parameters_of(fn)
    copies = tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs)
    with torch.no_grad():
        graphs = lower(fn, copies)
    result = Explanation()
    for index, lowered in enumerate(graphs):
        after = copy_graph(lowered.graph)
        report = eliminate_clones_in_graph(after, lowered.donated, policy, fold)
        result.reports.append(report)
        result.rows += _rows(index, lowered.graph, report, params, lowered.inputs)
        root = torch.nn.Module()
        if not report.clones_before:
            result.checks.append(NOTHING_TO_CHECK)
            continue
        try:
            check = verify.check(fx.GraphModule(root, copy_graph(lowered.graph)), fx.GraphModule(root, after),
                                 donated=lowered.donated, trials=trials)
        except Exception as error:  # noqa: BLE001 - a graph the checker cannot run is reported, not fatal
            log.warning("graph %d: the differential check could not run: %r", index, error)
            check = f"{type(error).__name__}: {error}"
        result.checks.append(check)
    return result
