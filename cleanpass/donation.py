"""The donation context: which graph inputs the caller gives up, for the Inductor adapter.

This is the only global state in cleanpass (a context variable, so threads and nested compiles
each see their own). There is no user-input donation in torch.compile itself; whoever knows
which inputs are donated (e.g. a pre-grad pass that sees `maybe_inplace` calls) sets it around
the compile.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterable, Iterator

_DONATED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "cleanpass_donated", default=())


@contextlib.contextmanager
def donated_inputs(positions: Iterable[int]) -> Iterator[tuple[int, ...]]:
    """Within the block, the pass treats these placeholder positions as donated."""
    value = tuple(sorted({int(p) for p in positions}))
    if any(p < 0 for p in value):
        raise ValueError(f"donated positions must be >= 0, got {value}")
    token = _DONATED.set(value)
    try:
        yield value
    finally:
        _DONATED.reset(token)


def current_donated() -> tuple[int, ...]:
    """The donated placeholder positions of the innermost `donated_inputs` block (or none)."""
    return _DONATED.get()
