"""Copies and view arguments read from Inductor's generated wrapper code (pure: text in, facts out).

The FX graph's ``aten.clone`` count cannot see copies Inductor adds itself while lowering:
a layout constraint (a custom op's exact-stride rule checked against a stale
``meta["eager_input_vals"]``, a view it cannot express as a reinterpretation) makes it copy an
argument into a temporary, call the op on the temporary and copy the result back. So we read
the ``call`` body of the wrapper module, the code that actually runs.

**Copies** (:func:`count_copies`): launches in the ``call`` body that copy data.

- A generated kernel (``cpp_fused_*`` on CPU, ``triton_*.run`` on CUDA) copies when a post-grad
  FX node fused into it is a copy (``clone``, ``copy``, ``contiguous``; a clone fused into a norm
  counts) or is an extern op's own node: an extern op runs outside generated code, so a
  generated kernel that carries its node is a layout copy Inductor made for it (input or copy
  back). The nodes come from Inductor's provenance map (``trace.provenance_tracking_level=1``;
  its ``# [Provenance debug handles] <kernel>:<handle>`` comment ties each launch to its entry);
  without provenance, from the tokens of the kernel's name (clones our passes insert carry no
  ATen name, so that fallback misses them).
- Extern calls: a copy op (``aten.clone``, ``aten.copy_``, ...), ``x.copy_(y)`` (Inductor's
  device and in-place copy fallbacks) and ``x.clone()``.
- Not counted: ``copy_if_misaligned`` (copies only an input whose data is misaligned at run
  time) and ``clone_preserve_strides`` (autotuning only; never in the wrapper).

**Views** (:func:`check_views`): every argument a checked op mutates (``Tensor(a!)`` in its
schema) must reach it as a buffer or a reinterpretation of one (``reinterpret_tensor``,
``as_strided``), and that storage must not be a temporary Inductor copied for this call: its
last writer before the call may not be a copy kernel that carries the op's own node, nor an
extern copy. A clone the FX graph asks for (our lowering's ``clone`` + in-place kernel) is fine:
its kernel carries the clone's node, not only the op's (Inductor also names the op's node on a
kernel that writes a graph value straight into the layout the op requires). Without provenance the check cannot tell the
two apart and reports the argument as unverified.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from harness.run.attribution import name_class, node_classes

#: op qualified name (``ns::op.overload``) -> (position, name) of each argument it mutates;
#: None for an op the view check leaves alone
MutatedArgs = Callable[[str], "Sequence[tuple[int, str]] | None"]
Provenance = Mapping[str, Sequence[str]]

_HANDLE = re.compile(r"#\s*\[Provenance debug handles\]\s*(\S+)")
_REINTERPRET = {"reinterpret_tensor", "as_strided", "torch.as_strided", "aten.view.dtype", "aten.as_strided",
                "torch.ops.aten.as_strided.default"}
_ALLOC = re.compile(r"^(?:torch\.)?empty_strided(?:_\w+)?$|^alloc_from_pool$")
_TORCH_OP = re.compile(r"^(?:torch\.ops|aten)\.")
_COPY_METHODS = {"copy_", "clone"}


@dataclass(frozen=True)
class Launch:
    """One call statement of the ``call`` body: a kernel launch, an extern call or a method call."""

    index: int                  # statement position in the flattened body
    kind: str                   # "generated", "extern" or "method"
    name: str                   # kernel name, dotted callee, or the method name
    args: tuple[ast.expr, ...]
    keywords: Mapping[str, ast.expr]
    target: str | None          # the name its result is assigned to
    key: str | None             # provenance key (``<kernel>:<handle>``) from the comment above it
    receiver: str | None = None  # ``x`` of ``x.copy_(...)``


@dataclass(frozen=True)
class Wrapper:
    """A parsed wrapper module: the flattened ``call`` body and what its kernels write."""

    statements: tuple[ast.stmt, ...]
    launches: tuple[Launch, ...]
    #: generated kernel name -> argument positions it writes (from its signature)
    writes: Mapping[str, frozenset[int]]


@dataclass(frozen=True)
class ViewViolation:
    """A mutated argument that reaches its kernel as a temporary, not as its base's storage."""

    op: str
    argument: str
    detail: str

    def __str__(self) -> str:
        return f"{self.op}: mutated argument {self.argument!r} {self.detail}"


@dataclass
class ViewReport:
    """The view check of one wrapper: arguments checked, violations, arguments it could not verify."""

    checked: int = 0
    violations: list[ViewViolation] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)


# ---- parsing ----------------------------------------------------------------------------

def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _const_str(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kernel_writes(value: ast.expr) -> frozenset[int] | None:
    """Written argument positions of an ``async_compile.<kind>(...)`` kernel definition."""
    if not (isinstance(value, ast.Call) and (_dotted(value.func) or "").startswith("async_compile.")):
        return None
    kind = (_dotted(value.func) or "").rsplit(".", 1)[-1]
    if kind.startswith("cpp") and value.args and isinstance(value.args[0], ast.List):
        types = [_const_str(t) or "" for t in value.args[0].elts]
        return frozenset(i for i, t in enumerate(types) if t.endswith("*") and not t.startswith("const"))
    src = next((s for s in map(_const_str, value.args) if s and "def " in s), None)
    m = re.search(r"def \w+\(([^)]*)\)", src or "")
    if not m:
        return frozenset()
    params = [p.split(":")[0].strip() for p in m.group(1).split(",")]
    return frozenset(i for i, p in enumerate(params) if p.startswith(("out_ptr", "in_out_ptr")))


def _call_function(tree: ast.Module) -> ast.FunctionDef | None:
    """The wrapper's ``call`` (a method of ``Runner`` on torch 2.13, module level before)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "call":
            return node
    return None


def _flatten(body: Iterable[ast.stmt]) -> list[ast.stmt]:
    """Statements in order, ``with`` blocks (CUDA's device guard) opened."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.With):
            out += _flatten(stmt.body)
        else:
            out.append(stmt)
    return out


def parse(code: str) -> Wrapper:
    """Parse one wrapper module (raises ``SyntaxError`` on text that is not one)."""
    tree = ast.parse(code)
    writes: dict[str, frozenset[int]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            found = _kernel_writes(stmt.value)
            if found is not None:
                writes[stmt.targets[0].id] = found
    fn = _call_function(tree)
    statements = tuple(_flatten(fn.body)) if fn is not None else ()
    lines = code.splitlines()
    launches: list[Launch] = []
    previous_end = fn.lineno if fn is not None else 0
    pending: list[str] = []  # handle comments not yet matched (a stream line may sit in between)
    for i, stmt in enumerate(statements):
        pending += [m.group(1) for line in lines[previous_end:stmt.lineno - 1] for m in [_HANDLE.search(line)] if m]
        previous_end = stmt.end_lineno or stmt.lineno
        launch = _launch(i, stmt, writes, None)
        if launch is None:
            continue
        key = next((k for k in reversed(pending) if k.rsplit(":", 1)[0] == launch.name), None)
        if key is not None:
            pending = []
            launch = dataclasses.replace(launch, key=key)
        launches.append(launch)
    return Wrapper(statements, tuple(launches), writes)


def _launch(index: int, stmt: ast.stmt, kernels: Mapping[str, frozenset[int]], key: str | None) -> Launch | None:
    """The launch one statement makes (None for allocations, aliases, asserts, ...)."""
    target = None
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        target, value = stmt.targets[0].id, stmt.value
    elif isinstance(stmt, ast.Expr):
        value = stmt.value
    else:
        return None
    if not isinstance(value, ast.Call):
        return None
    callee = _dotted(value.func) or ""
    kw = {k.arg: k.value for k in value.keywords if k.arg}
    if callee in kernels or (callee.endswith(".run") and callee[:-4] in kernels):
        name = callee.removesuffix(".run")
        return Launch(index, "generated", name, tuple(value.args), kw, target, key)
    if isinstance(value.func, ast.Attribute) and value.func.attr in _COPY_METHODS:
        return Launch(index, "method", value.func.attr, tuple(value.args), kw, target, key,
                      receiver=_root_name(value.func.value))
    if callee.startswith(("torch.ops.", "extern_kernels.", "aten.")):
        return Launch(index, "extern", callee, tuple(value.args), kw, target, key)
    return None


def op_qualname(callee: str) -> str | None:
    """``torch.ops.ns.op.overload`` (or ``aten.op.overload``) -> ``ns::op.overload``."""
    parts = callee.split(".")
    if parts[:2] == ["torch", "ops"] and len(parts) >= 4:
        ns, rest = parts[2], parts[3:]
    elif parts[0] == "aten" and len(parts) >= 2:
        ns, rest = "aten", parts[1:]
    else:
        return None
    return f"{ns}::{'.'.join(rest[:2])}" if len(rest) >= 2 else f"{ns}::{rest[0]}.default"


def _node_stem(qualname: str) -> str:
    """The FX node name of a call of ``ns::op.overload`` (before any ``_<n>`` suffix)."""
    return qualname.split("::", 1)[1].replace(".", "_")


# ---- copies -----------------------------------------------------------------------------

def _nodes(launch: Launch, provenance: Provenance) -> list[str] | None:
    """The post-grad FX nodes of a generated launch: its own provenance entry, else the union of
    the entries of its kernel name (one kernel may be launched from several places)."""
    if launch.key and launch.key in provenance:
        return list(provenance[launch.key])
    merged = [n for k, nodes in provenance.items() if k.split(":", 1)[0] == launch.name for n in nodes]
    return merged or None


def _extern_stems(wrapper: Wrapper) -> set[str]:
    return {_node_stem(q) for ln in wrapper.launches if ln.kind == "extern"
            for q in [op_qualname(ln.name)] if q and not q.startswith("aten::")}


def _is_stem_of(node: str, stems: Iterable[str]) -> bool:
    return any(re.fullmatch(re.escape(s) + r"(_\d+)?", node) for s in stems)


def _layout_copy_for_extern(nodes: Sequence[str], stems: Iterable[str]) -> bool:
    """Whether a generated kernel that carries an extern op's own node is a copy Inductor made
    to give that op the layout it requires. Inductor names the op's node on every kernel it
    realizes while lowering the op: the layout copy of a view (alone, or fused with the view's
    producers: it then also carries the view's node), but also a graph clone or a computation
    (a `mul`) written straight into the layout the op requires, which are no extra copy."""
    own = {n for n in nodes if _is_stem_of(n, stems)}
    if not own:
        return False
    others = [n for n in nodes if n not in own]
    working = node_classes(others)
    if not working:
        return True
    if "copy" in working:  # the graph's own clone: counted as such, not as Inductor's
        return False
    return any(not node_classes([n]) for n in others)  # a view was copied for the op


def is_copy(launch: Launch, provenance: Provenance, extern_stems: Iterable[str] = ()) -> bool:
    """Whether one launch copies data (see the module docstring for the rules)."""
    if launch.kind == "method":
        return True
    if launch.kind == "extern":
        qual = op_qualname(launch.name)
        return qual is not None and name_class(qual.split("::", 1)[1].split(".")[0]) == "copy"
    nodes = _nodes(launch, provenance)
    if nodes:
        return "copy" in node_classes(nodes) or _layout_copy_for_extern(nodes, extern_stems)
    tail = launch.name.split("fused_", 1)[-1]
    return any(name_class(tok) == "copy" for tok in tail.split("_") if tok)


def copy_launches(code: str, provenance: Provenance | None = None) -> list[Launch]:
    """The launches of one wrapper that copy."""
    wrapper = parse(code)
    stems = _extern_stems(wrapper)
    return [ln for ln in wrapper.launches if is_copy(ln, provenance or {}, stems)]


def count_copies(codes: Sequence[str], provenance: Provenance | Sequence[Provenance] | None = None) -> int | None:
    """Copy launches over all graphs of one compiled call; None when no code was captured.

    ``provenance``: one map per code (in order), or one map for all of them.
    """
    if not codes:
        return None
    per_code = _per_code(codes, provenance)
    return sum(len(copy_launches(c, p)) for c, p in zip(codes, per_code))


def _per_code(codes: Sequence[str], provenance: Provenance | Sequence[Provenance] | None) -> list[Provenance]:
    if provenance is None:
        return [{} for _ in codes]
    if isinstance(provenance, Mapping):
        return [provenance for _ in codes]
    listed = list(provenance)
    return listed + [{} for _ in range(len(codes) - len(listed))]


# ---- views ------------------------------------------------------------------------------

def _root_name(expr: ast.expr) -> str | None:
    """The buffer an argument expression names, through reinterpretations; None otherwise."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Call):
        callee = _dotted(expr.func) or ""
        if callee in _REINTERPRET and expr.args:
            return _root_name(expr.args[0])
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in ("as_strided", "view"):
            return _root_name(expr.func.value)
    return None


def _assigned(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    return None


def _storage(wrapper: Wrapper, name: str, before: int) -> tuple[set[str], int]:
    """The names that share ``name``'s storage at statement ``before``, and the index of the
    statement that created that storage (-1: a graph input or other outside tensor)."""
    names = {name}
    current, start = name, before
    while True:
        found = None
        for i in range(start - 1, -1, -1):
            got = _assigned(wrapper.statements[i])
            if got is not None and got[0] == current:
                found = (i, got[1])
                break
        if found is None:
            return names, -1
        i, value = found
        # an alias (``buf6 = buf0  # reuse``), a reinterpretation, or one output of a
        # multi-output extern call (``buf14 = buf13[0]``); anything else creates the storage
        source = _root_name(value.value if isinstance(value, ast.Subscript) else value)
        if source is None:
            return names, i
        names.add(source)
        current, start = source, i


def _writes(launch: Launch, wrapper: Wrapper, mutated_args: MutatedArgs) -> set[str]:
    """Buffers one launch writes (by name, through reinterpretations)."""
    out: set[str] = set()
    if launch.target:
        out.add(launch.target)
    if launch.kind == "generated":
        positions = wrapper.writes.get(launch.name, frozenset())
        out |= {r for p in positions if p < len(launch.args) for r in [_root_name(launch.args[p])] if r}
    elif launch.kind == "method" and launch.name == "copy_" and launch.receiver:
        out.add(launch.receiver)
    elif launch.kind == "extern":
        if "out" in launch.keywords:
            r = _root_name(launch.keywords["out"])
            if r:
                out.add(r)
        qual = op_qualname(launch.name)
        for pos, arg_name in (mutated_args(qual) or ()) if qual else ():
            expr = launch.args[pos] if pos < len(launch.args) else launch.keywords.get(arg_name)
            r = _root_name(expr) if expr is not None else None
            if r:
                out.add(r)
    return out


def _own_nodes(launch: Launch, qual: str, provenance: Provenance) -> set[str] | None:
    """The op call's own FX node name(s), from its provenance entry; None without provenance."""
    if not (launch.key and launch.key in provenance):
        return None
    stem = _node_stem(qual)
    return {n for n in provenance[launch.key] if _is_stem_of(n, [stem])} or None


def check_views(code: str, provenance: Provenance | None, mutated_args: MutatedArgs) -> ViewReport:
    """Check every mutated argument of every op ``mutated_args`` names (module docstring)."""
    provenance = provenance or {}
    wrapper = parse(code)
    report = ViewReport()
    by_index = {ln.index: ln for ln in wrapper.launches}
    for launch in wrapper.launches:
        qual = op_qualname(launch.name) if launch.kind == "extern" else None
        mutated = mutated_args(qual) if qual else None
        if not mutated:
            continue
        own = _own_nodes(launch, qual, provenance)
        for pos, arg_name in mutated:
            expr = launch.args[pos] if pos < len(launch.args) else launch.keywords.get(arg_name)
            if expr is None:
                continue
            report.checked += 1
            root = _root_name(expr)
            if root is None:
                report.violations.append(ViewViolation(qual, arg_name, f"is computed in place ({ast.unparse(expr)}), "
                                                       "not a buffer or a reinterpretation of one"))
                continue
            names, created = _storage(wrapper, root, launch.index)
            if created < 0:
                continue  # a graph input (or another outside tensor) is never a temporary
            writer = next((by_index[i] for i in range(launch.index - 1, created - 1, -1)
                           if i in by_index and names & _writes(by_index[i], wrapper, mutated_args)), None)
            if writer is None:
                continue  # a fresh buffer nothing wrote yet (an out-of-place kernel's output)
            problem = _temporary(writer, own, provenance, wrapper)
            if problem == "unverified":
                report.unverified.append(f"{qual}:{arg_name}")
            elif problem:
                report.violations.append(ViewViolation(qual, arg_name, f"is a temporary: {root} {problem}"))
    return report


def _temporary(writer: Launch, own: set[str] | None, provenance: Provenance, wrapper: Wrapper) -> str:
    """Why the storage ``writer`` last wrote is a temporary copy ('' when it is not)."""
    if writer.kind == "method":
        return f"comes from {writer.receiver}.{writer.name}(...)"
    if writer.kind == "extern":
        return f"comes from the copy {writer.name}" if is_copy(writer, provenance) else ""
    nodes = _nodes(writer, provenance)
    if own is None or nodes is None:
        return "unverified"
    if _layout_copy_for_extern(nodes, own):
        return f"is written by {writer.name}, a copy Inductor made for this call (nodes {sorted(nodes)})"
    return ""
