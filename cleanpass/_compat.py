"""The one place that touches private torch APIs, each with a fallback.

torch moves these between releases (the GPU machines run 2.11, CPU machines 2.13); keeping them
here means a rename costs one edit and a missing API degrades to a conservative answer.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any, Iterator

import sympy
import torch
from torch._inductor.custom_graph_pass import CustomGraphPass as CustomGraphPassBase  # torch >= 2.6
from torch._ops import HigherOrderOperator, OpOverload
from torch.utils._python_dispatch import TorchDispatchMode  # torch >= 2.0; verify's poisoning
from torch.utils._pytree import tree_leaves

__all__ = ["AUTO_FUNCTIONALIZED_V1", "CustomGraphPassBase", "HigherOrderOperator", "OpOverload",
           "ShapeGuardNeeded", "TorchDispatchMode", "canonical_expr", "fake_mode_of", "fast_tensor_metadata",
           "functional_hops", "guard_count", "guard_texts", "has_static_layout", "holds_at",
           "is_functional_triton_wrapper", "is_impure", "rerun_on_fakes", "scaled_expr",
           "shape_env_of", "size_hint", "statically_equal", "statically_equal_scaled",
           "statically_true", "storage_key", "sym_expr", "tree_leaves", "value_at"]


def functional_hops() -> frozenset:
    """Higher-order ops that read their tensors and return fresh ones (never write inputs)."""
    found = []
    try:
        from torch._higher_order_ops import auto_functionalize as af

        found += [getattr(af, name) for name in ("auto_functionalized", "auto_functionalized_v2")
                  if hasattr(af, name)]
    except ImportError:  # pragma: no cover
        pass
    try:
        from torch._higher_order_ops.triton_kernel_wrap import triton_kernel_wrapper_functional

        found.append(triton_kernel_wrapper_functional)
    except ImportError:  # pragma: no cover
        pass
    return frozenset(found)


def has_static_layout(fake: torch.Tensor) -> bool:
    """Whether sizes and strides are plain ints, so comparing them adds no shape guard. Reads
    the tensor's own flag (one attribute, not two tuples) when it has one; the storage offset
    is the caller's to check."""
    flag = getattr(fake, "_has_symbolic_sizes_strides", None)
    if flag is not None:
        return not flag
    return all(type(v) is int for v in (*fake.shape, *fake.stride()))


_DISABLED_TORCH_FUNCTION = getattr(torch._C, "DisableTorchFunctionSubclass", None)


def fast_tensor_metadata() -> Any:
    """A context in which reading a tensor subclass's metadata skips `__torch_function__`.

    A fake tensor's `dtype`, `shape` or `stride()` costs 3-4x a plain tensor's (about 300 ns
    against 80 ns on torch 2.13) only because torch looks for a `__torch_function__` override
    first; fake tensors (and parameters) have none (theirs is torch's disabled one), so for
    them every answer, and every op rerun on them, is the same without the lookup. Modes
    (a `TorchFunctionMode` such as a device context) stay active."""
    return _DISABLED_TORCH_FUNCTION() if _DISABLED_TORCH_FUNCTION is not None else contextlib.nullcontext()


def is_impure(node: Any) -> bool:
    """fx's own verdict on whether dead-code elimination may drop a node; True when unsure."""
    try:
        return bool(node.is_impure())
    except Exception:  # an fx without the method, or a node it cannot judge
        return True


_STORAGE_ID = getattr(torch._C, "_storage_id", None)  # the StorageImpl's address, as below


def storage_key(value: Any) -> Any | None:
    """A hashable identity of a (fake) tensor's storage, or None when there is no tensor.

    The StorageImpl's address, as `StorageWeakRef` keys it; meta keeps the tensor alive. Read
    directly when torch offers it (this runs once per node of every graph: building the
    Python storage object costs twice as much), else through that object."""
    if not isinstance(value, torch.Tensor):
        return None
    try:
        return _STORAGE_ID(value) if _STORAGE_ID is not None else value.untyped_storage()._cdata
    except Exception:  # tensors without storage (e.g. some subclasses)
        return None


try:
    from torch.fx.experimental.symbolic_shapes import statically_known_true as _known_true
except ImportError:  # pragma: no cover
    _known_true = None


def sym_expr(value: Any) -> Any | None:
    """The sympy expression behind a SymInt (None for anything else): immutable and hashable,
    and two structurally equal expressions are the same size."""
    return getattr(getattr(value, "node", None), "expr", None)


def scaled_expr(count: Any, scale: int) -> Any | None:
    """The sympy expression of ``count * scale`` for a symbolic count (None for an int): built
    once per expression, where multiplying the SymInt makes a new one (about 20 us) per call."""
    expr = sym_expr(count)
    return None if expr is None else _scaled(expr, scale)


@functools.lru_cache(maxsize=1024)
def _scaled(expr: Any, scale: int) -> Any:
    return expr * scale


def statically_equal_scaled(total: Any, count: Any, scale: int) -> bool:
    """`statically_equal(total, count * scale)` (bytes against elements times their size),
    without building the product when both are the same expression."""
    product = scaled_expr(count, scale)
    if product is not None and sym_expr(total) == product:
        return True
    return statically_equal(total, count * scale)


def statically_equal(a: Any, b: Any) -> bool:
    """True only when two sizes/strides are provably equal, without adding shape guards."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if a is b:
        return True
    node_a = getattr(a, "node", None)
    if node_a is not None and node_a is getattr(b, "node", None):  # one SymNode: a clone's sizes
        return True
    expr_a = sym_expr(a)
    if expr_a is not None and expr_a == sym_expr(b):  # the same expression: no proof needed
        return True
    if _known_true is None:
        return False
    try:
        return bool(_known_true(a == b))
    except Exception:
        return False


def statically_true(condition: Any) -> bool:
    """True only when a (symbolic) boolean is provably true, without adding shape guards."""
    if isinstance(condition, bool):
        return condition
    if _known_true is None:
        return False
    try:
        return bool(_known_true(condition))
    except Exception:
        return False


def fake_mode_of(value: Any) -> Any | None:
    """The fake-tensor mode a `meta["val"]` fake tensor belongs to; None for anything else."""
    return getattr(value, "fake_mode", None)  # FakeTensor's own attribute (torch._subclasses)


def shape_env_of(graph: Any) -> Any | None:
    """The shape environment of a traced graph (its placeholders' fake mode's, or a symbolic
    size placeholder's); None when the graph has none. Placeholders come first in a graph."""
    for node in graph.nodes:
        if node.op != "placeholder":
            return None
        val = node.meta.get("val")
        env = getattr(fake_mode_of(val), "shape_env", None) or getattr(getattr(val, "node", None), "shape_env", None)
        if env is not None:
            return env
    return None


def guard_count(env: Any) -> int:
    """How many shape guards `env` holds (0 without one): what a compiled program is
    specialised on, so what makes it recompile."""
    return len(getattr(env, "guards", None) or ())


def guard_texts(env: Any, start: int = 0) -> tuple[str, ...]:
    """The shape guards `env` holds from position `start` on, as text (e.g. ``Ne(s0, 1)``)."""
    guards = getattr(env, "guards", None) or ()
    return tuple(str(getattr(guard, "expr", guard)) for guard in guards[start:])


class ShapeGuardNeeded(RuntimeError):
    """An op re-run on fake values would have guarded the graph's sizes: its result holds only
    where the guard does, so it answers nothing about every size the graph runs at."""


class _NotTheRefusal(logging.Filter):
    """Drops torch's "failed during evaluate_expr" warning while `_no_new_guards` refuses a
    guard: the refusal is the expected outcome there, not a failure to report."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("failed during evaluate_expr")


_SHAPES_LOG = logging.getLogger("torch.fx.experimental.symbolic_shapes")


class _GuardRefused(RuntimeError):
    """Raised by `_refusing_guards`'s stand-in for the shape environment's pre-guard check."""


@contextlib.contextmanager
def _refusing_guards(env: Any) -> Iterator[None]:
    """torch's `error_on_new_guards` where torch predates it (2.11): `ShapeEnv._check_frozen` runs
    just before any guard or runtime assert is recorded, and 2.13's strict mode is that check
    made to raise. Shadowing the method on this one instance does the same for the block; an
    exception (unlike a frozen env's ignored guard) leaves nothing in torch's evaluation cache."""
    def refuse(expr: Any, concrete_val: Any) -> None:
        raise _GuardRefused(f"{expr} == {concrete_val}")

    shadowed = env.__dict__.get("_check_frozen")
    env._check_frozen = refuse
    try:
        yield
    finally:
        if shadowed is None:
            del env._check_frozen
        else:
            env._check_frozen = shadowed


def _strict_mode(env: Any) -> Any | None:
    """A context manager factory that makes `env` raise on a new guard, or None where this torch
    has neither `error_on_new_guards` nor the check it is built on."""
    strict = getattr(env, "error_on_new_guards", None)
    if strict is None and callable(getattr(env, "_check_frozen", None)) and hasattr(env, "__dict__"):
        return lambda: _refusing_guards(env)
    return strict


@contextlib.contextmanager
def _no_new_guards(env: Any) -> Iterator[None]:
    """Raise `ShapeGuardNeeded` where the block would add a shape guard to `env`. The strict mode
    (`_strict_mode`) raises before anything is recorded; without one, the count is checked after
    the block (the guard then stays, and the pass reports it in `guards_added`)."""
    if env is None:
        yield
        return
    strict = _strict_mode(env)
    if strict is not None:
        quiet = _NotTheRefusal()
        _SHAPES_LOG.addFilter(quiet)
        try:
            with strict():
                yield
        except RuntimeError as error:
            if isinstance(error, _GuardRefused) or type(error).__name__ == "_ShapeEnvGuardError":
                raise ShapeGuardNeeded(str(error)) from error
            raise
        finally:
            _SHAPES_LOG.removeFilter(quiet)
        return
    before = guard_count(env)
    yield
    if guard_count(env) != before:
        raise ShapeGuardNeeded(", ".join(guard_texts(env, before)))


def rerun_on_fakes(node: Any, values: dict, fake_mode: Any) -> Any:
    """`node`'s op applied to fake values: `values[arg]` for the nodes in `values`, every other
    node argument's `meta["val"]`. Raises what the op raises (an invalid view, a missing val),
    and `ShapeGuardNeeded` where the op asks a question about sizes that would guard them."""
    from torch.fx.node import Node, map_arg

    def value_of(arg: Node) -> Any:
        return values[arg] if arg in values else arg.meta["val"]

    args = map_arg(node.args, value_of)
    kwargs = map_arg(node.kwargs, value_of)
    with fake_mode, _no_new_guards(getattr(fake_mode, "shape_env", None)):
        return node.target(*args, **kwargs)


def canonical_expr(value: Any) -> Any | None:
    """A SymInt's sympy expression with its shape environment's replacements applied (a size
    traced equal to another, or to a constant, is written in its terms); None for anything else."""
    node = getattr(value, "node", None)
    expr = getattr(node, "expr", None)
    env = getattr(node, "shape_env", None)
    if expr is None or env is None:
        return expr
    try:
        return env.replace(expr)
    except Exception:  # an older ShapeEnv: the raw expression is still right, only less simple
        return expr


def value_at(value: Any, assignment: dict) -> int | None:
    """A size at other values of its symbols: an int as it is, a SymInt's expression evaluated
    with `assignment` (sympy symbol -> int); None when a symbol is left unassigned."""
    if isinstance(value, int):
        return value
    expr = canonical_expr(value)
    if expr is None:
        return None
    try:
        result = expr.xreplace(_as_sympy(assignment))
        return None if result.free_symbols else int(result)
    except Exception:  # an expression sympy cannot evaluate there
        return None


def _as_sympy(assignment: dict) -> dict:
    """`xreplace` substitutes sympy values only: plain ints become sympy Integers."""
    return {symbol: sympy.Integer(value) for symbol, value in assignment.items()}


def holds_at(env: Any, assignment: dict) -> bool:
    """Whether sizes `assignment` satisfy the shape environment: each symbol within its range and
    every guard true. A program compiled from the graph runs only where they hold; a guard that
    does not evaluate to True there (one on unassigned symbols included) counts as failing."""
    try:
        for symbol, value in assignment.items():
            bounds = env.var_to_range.get(symbol)
            if bounds is not None and not (bool(bounds.lower <= value) and bool(value <= bounds.upper)):
                return False
        values = _as_sympy(assignment)
        # a guard names symbols since replaced (Eq(s1, 16) once s1 is 16): replace them first
        return all(env.replace(guard.expr).xreplace(values) is sympy.true for guard in env.guards)
    except Exception:  # a shape environment read differently by this torch: check nothing there
        return False


def size_hint(value: Any) -> int | None:
    """A size's value at trace time (a symbolic size's hint; adds no shape guard); None when
    unknown (no shape environment, or an unbacked data-dependent size)."""
    if isinstance(value, int):
        return value
    node = getattr(value, "node", None)
    hint = getattr(node, "hint", None)
    if hint is not None:
        return int(hint)
    try:
        return int(node.shape_env.size_hint(node.expr))
    except Exception:
        return None


def _load_auto_functionalized_v1() -> Any | None:
    try:
        from torch._higher_order_ops.auto_functionalize import auto_functionalized
    except ImportError:  # pragma: no cover
        return None
    return auto_functionalized


AUTO_FUNCTIONALIZED_V1 = _load_auto_functionalized_v1()

try:
    from torch._higher_order_ops.triton_kernel_wrap import (
        TritonKernelWrapperFunctional as _TritonFunctional,
    )
except ImportError:  # pragma: no cover
    _TritonFunctional = None


def is_functional_triton_wrapper(target: Any) -> bool:
    """Whether a higher-order op is the functional Triton kernel wrapper (writes no input)."""
    return _TritonFunctional is not None and isinstance(target, _TritonFunctional)
